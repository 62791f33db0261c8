#include "restore-image.h"

#import <Virtualization/Virtualization.h>

#include <memory>
#include <string>

#include "bridge.h"

namespace macvm {

namespace {

// Plain data copied out of a VZMacOSRestoreImage on whatever queue VZ answered on.
struct RestoreImageInfo {
  std::string url;
  std::string buildVersion;
  std::string osVersion;
  bool supported = false;
  double minimumCpuCount = 0;
  double minimumMemoryBytes = 0;
  std::string hardwareModel;  // base64 of dataRepresentation
};

RestoreImageInfo Describe(VZMacOSRestoreImage* image) {
  RestoreImageInfo info;
  info.url = FromNSString(image.URL.absoluteString);
  info.buildVersion = FromNSString(image.buildVersion);
  NSOperatingSystemVersion version = image.operatingSystemVersion;
  info.osVersion = std::to_string(version.majorVersion) + "." + std::to_string(version.minorVersion) + "." +
                   std::to_string(version.patchVersion);
  // nil when this host cannot run any configuration the image supports.
  VZMacOSConfigurationRequirements* requirements = image.mostFeaturefulSupportedConfiguration;
  if (requirements != nil) {
    info.supported = requirements.hardwareModel.supported;
    info.minimumCpuCount = static_cast<double>(requirements.minimumSupportedCPUCount);
    info.minimumMemoryBytes = static_cast<double>(requirements.minimumSupportedMemorySize);
    info.hardwareModel = FromNSString([requirements.hardwareModel.dataRepresentation base64EncodedStringWithOptions:0]);
  }
  return info;
}

Napi::Value ToJs(Napi::Env env, const RestoreImageInfo& info) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("url", info.url);
  object.Set("buildVersion", info.buildVersion);
  object.Set("osVersion", info.osVersion);
  object.Set("supported", info.supported);
  if (!info.hardwareModel.empty()) {
    object.Set("minimumCpuCount", info.minimumCpuCount);
    object.Set("minimumMemoryBytes", info.minimumMemoryBytes);
    object.Set("hardwareModel", info.hardwareModel);
  }
  return object;
}

void (^Settle(std::shared_ptr<PendingPromise> pending))(VZMacOSRestoreImage*, NSError*) {
  return ^(VZMacOSRestoreImage* image, NSError* error) {
    if (image == nil) {
      pending->Reject(FailureFromNSError(error, "MACVM_IPSW_INVALID"));
      return;
    }
    RestoreImageInfo info = Describe(image);
    pending->Resolve([info](Napi::Env env) { return ToJs(env, info); });
  };
}

Napi::Value LoadRestoreImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "loadRestoreImage(path): path must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto pending = PendingPromise::Create(env, "macvm-restore-image");
  NSURL* url = [NSURL fileURLWithPath:ToNSString(info[0].As<Napi::String>().Utf8Value())];
  [VZMacOSRestoreImage loadFileURL:url completionHandler:Settle(pending)];
  return pending->promise();
}

Napi::Value FetchLatestRestoreImage(const Napi::CallbackInfo& info) {
  auto pending = PendingPromise::Create(info.Env(), "macvm-latest-restore-image");
  [VZMacOSRestoreImage fetchLatestSupportedWithCompletionHandler:Settle(pending)];
  return pending->promise();
}

}  // namespace

void RegisterRestoreImage(Napi::Env env, Napi::Object exports) {
  exports.Set("loadRestoreImage", Napi::Function::New(env, LoadRestoreImage, "loadRestoreImage"));
  exports.Set("fetchLatestRestoreImage", Napi::Function::New(env, FetchLatestRestoreImage, "fetchLatestRestoreImage"));
}

}  // namespace macvm
