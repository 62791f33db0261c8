#include "installer.h"

#import <Virtualization/Virtualization.h>

#include <memory>
#include <string>

#include "bridge.h"
#include "vm-spec.h"

// KVO target for installer.progress.fractionCompleted. NSProgress may notify on any thread;
// the value is copied and handed to the JS channel, never used to call JS directly.
@interface MacvmProgressObserver : NSObject
- (instancetype)initWithChannel:(std::shared_ptr<macvm::JsChannel>)channel;
@end

@implementation MacvmProgressObserver {
  std::shared_ptr<macvm::JsChannel> _channel;
}

- (instancetype)initWithChannel:(std::shared_ptr<macvm::JsChannel>)channel {
  if ((self = [super init])) _channel = channel;
  return self;
}

- (void)observeValueForKeyPath:(NSString*)keyPath
                      ofObject:(id)object
                        change:(NSDictionary<NSKeyValueChangeKey, id>*)change
                       context:(void*)context {
  if (![keyPath isEqualToString:@"fractionCompleted"]) return;
  double fraction = ((NSProgress*)object).fractionCompleted;
  _channel->Post([fraction](Napi::Env env, Napi::Function onProgress) {
    Napi::HandleScope scope(env);
    onProgress.Call({Napi::Number::New(env, fraction)});
  });
}

@end

namespace macvm {

namespace {

Napi::Value NewMachineIdentifier(const Napi::CallbackInfo& info) {
  VZMacMachineIdentifier* identifier = [[VZMacMachineIdentifier alloc] init];
  return Napi::String::New(info.Env(), FromNSString([identifier.dataRepresentation base64EncodedStringWithOptions:0]));
}

Napi::Value CreateAuxiliaryStorage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "createAuxiliaryStorage(path, hardwareModel): both must be strings").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  NSData* data = DataFromBase64(info[1].As<Napi::String>().Utf8Value());
  VZMacHardwareModel* model = data ? [[VZMacHardwareModel alloc] initWithDataRepresentation:data] : nil;
  if (model == nil) {
    Failure failure{"MACVM_IPSW_INVALID", "The hardware model is not a VZMacHardwareModel data representation.", "", 0};
    ToJsError(env, failure).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  NSError* error = nil;
  NSURL* url = [NSURL fileURLWithPath:ToNSString(info[0].As<Napi::String>().Utf8Value())];
  VZMacAuxiliaryStorage* storage =
      [[VZMacAuxiliaryStorage alloc] initCreatingStorageAtURL:url
                                                hardwareModel:model
                                                      options:VZMacAuxiliaryStorageInitializationOptionAllowOverwrite
                                                        error:&error];
  if (storage == nil) {
    ToJsError(env, FailureFromNSError(error, "MACVM_INSTALL_FAILED")).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

Napi::Value InstallMacOS(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsFunction()) {
    Napi::TypeError::New(env, "installMacOS(spec, ipswPath, onProgress)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  VmSpec spec;
  if (!ReadVmSpec(env, info[0], &spec)) return env.Undefined();
  Failure failure;
  VZVirtualMachineConfiguration* configuration = BuildConfiguration(spec, &failure);
  if (configuration == nil) {
    ToJsError(env, failure).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  NSURL* ipsw = [NSURL fileURLWithPath:ToNSString(info[1].As<Napi::String>().Utf8Value())];
  auto pending = PendingPromise::Create(env, "macvm-install");
  auto progress = std::make_shared<JsChannel>(env, info[2].As<Napi::Function>(), "macvm-install-progress", false);
  MacvmProgressObserver* observer = [[MacvmProgressObserver alloc] initWithChannel:progress];

  // One private serial queue for this VM; the VM, the installer and installWithCompletionHandler:
  // are created and called on it, and the completion handler runs on it too.
  dispatch_queue_t queue = dispatch_queue_create("dev.macvm.vz.install", DISPATCH_QUEUE_SERIAL);
  dispatch_async(queue, ^{
    VZVirtualMachine* vm = [[VZVirtualMachine alloc] initWithConfiguration:configuration queue:queue];
    VZMacOSInstaller* installer = [[VZMacOSInstaller alloc] initWithVirtualMachine:vm restoreImageURL:ipsw];
    [installer.progress addObserver:observer
                         forKeyPath:@"fractionCompleted"
                            options:NSKeyValueObservingOptionInitial | NSKeyValueObservingOptionNew
                            context:nil];
    [installer installWithCompletionHandler:^(NSError* error) {
      [installer.progress removeObserver:observer forKeyPath:@"fractionCompleted"];
      progress->Close();
      if (error != nil) pending->Reject(FailureFromNSError(error, "MACVM_INSTALL_FAILED"));
      else pending->Resolve([](Napi::Env env) { return env.Undefined(); });
      (void)vm;  // keeps the VM alive until the installer is done with it
    }];
  });
  return pending->promise();
}

}  // namespace

void RegisterInstaller(Napi::Env env, Napi::Object exports) {
  exports.Set("newMachineIdentifier", Napi::Function::New(env, NewMachineIdentifier, "newMachineIdentifier"));
  exports.Set("createAuxiliaryStorage", Napi::Function::New(env, CreateAuxiliaryStorage, "createAuxiliaryStorage"));
  exports.Set("installMacOS", Napi::Function::New(env, InstallMacOS, "installMacOS"));
}

}  // namespace macvm
