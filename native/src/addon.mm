// macvm_vz: the Virtualization.framework binding. Loaded only by vmhost (one VM per process),
// which runs on an ad-hoc-signed node carrying com.apple.security.virtualization.
#include <napi.h>

#import <Virtualization/Virtualization.h>

#include "installer.h"
#include "restore-image.h"
#include "virtual-machine.h"

namespace {

Napi::Value IsSupported(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), VZVirtualMachine.supported);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("isSupported", Napi::Function::New(env, IsSupported, "isSupported"));
  exports.Set("minimumAllowedMemorySize",
              Napi::Number::New(env, static_cast<double>(VZVirtualMachineConfiguration.minimumAllowedMemorySize)));
  exports.Set("maximumAllowedCPUCount",
              Napi::Number::New(env, static_cast<double>(VZVirtualMachineConfiguration.maximumAllowedCPUCount)));
  macvm::RegisterRestoreImage(env, exports);
  macvm::RegisterInstaller(env, exports);
  macvm::VirtualMachine::Register(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(macvm_vz, Init)
