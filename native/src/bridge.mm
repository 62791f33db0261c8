#include "bridge.h"

#import <Virtualization/Virtualization.h>

namespace macvm {

NSString* ToNSString(const std::string& value) {
  return [[NSString alloc] initWithBytes:value.data() length:value.size() encoding:NSUTF8StringEncoding];
}

std::string FromNSString(NSString* value) {
  if (value == nil) return std::string();
  const char* utf8 = [value UTF8String];
  return utf8 ? std::string(utf8) : std::string();
}

// VZErrorCode values added after the macOS 12 SDK, by number so this builds on either SDK.
// (Values from Apple's VZError.h, macOS 13+.)
enum : long {
  kVZErrorOutOfDiskSpace = 8,
  kVZErrorRestoreImageCatalogLoadFailed = 10001,
  kVZErrorInvalidRestoreImageCatalog = 10002,
  kVZErrorNoSupportedRestoreImagesInCatalog = 10003,
  kVZErrorRestoreImageLoadFailed = 10004,
  kVZErrorInvalidRestoreImage = 10005,
  kVZErrorInstallationRequiresUpdate = 10006,
  kVZErrorInstallationFailed = 10007,
};

Failure FailureFromNSError(NSError* error, const char* fallbackCode) {
  Failure failure;
  failure.code = fallbackCode;
  if (error == nil) {
    failure.message = "Virtualization.framework failed without saying why.";
    return failure;
  }
  failure.message = FromNSString(error.localizedDescription);
  NSString* reason = error.localizedFailureReason;
  if (reason.length > 0) failure.message += " (" + FromNSString(reason) + ")";
  failure.domain = FromNSString(error.domain);
  failure.nativeCode = static_cast<long>(error.code);
  if (![error.domain isEqualToString:VZErrorDomain]) return failure;

  switch (error.code) {
    case VZErrorVirtualMachineLimitExceeded:
      failure.code = "MACVM_SLOT_LIMIT";
      break;
    case VZErrorInvalidVirtualMachineConfiguration:
      // Without the entitlement, VZ refuses the configuration and names the entitlement.
      if ([error.localizedDescription containsString:@"com.apple.security.virtualization"] ||
          [error.localizedFailureReason containsString:@"com.apple.security.virtualization"]) {
        failure.code = "MACVM_ENTITLEMENT_MISSING";
      }
      break;
    case VZErrorInvalidDiskImage:
      failure.code = "MACVM_IMAGE_CORRUPT";
      break;
    case kVZErrorRestoreImageCatalogLoadFailed:
    case kVZErrorInvalidRestoreImageCatalog:
    case kVZErrorNoSupportedRestoreImagesInCatalog:
    case kVZErrorRestoreImageLoadFailed:
    case kVZErrorInvalidRestoreImage:
      failure.code = "MACVM_IPSW_INVALID";
      break;
    case kVZErrorInstallationRequiresUpdate:
    case kVZErrorInstallationFailed:
      failure.code = "MACVM_INSTALL_FAILED";
      break;
    case kVZErrorOutOfDiskSpace:
    default:
      break;
  }
  return failure;
}

Napi::Error ToJsError(Napi::Env env, const Failure& failure) {
  Napi::Error error = Napi::Error::New(env, failure.message);
  error.Set("code", Napi::String::New(env, failure.code));
  if (!failure.domain.empty()) {
    error.Set("domain", Napi::String::New(env, failure.domain));
    error.Set("nativeCode", Napi::Number::New(env, static_cast<double>(failure.nativeCode)));
  }
  return error;
}

JsChannel::JsChannel(Napi::Env env, Napi::Function callback, const char* name, bool keepsProcessAlive) {
  Napi::Function target = callback.IsEmpty() ? Napi::Function::New(env, [](const Napi::CallbackInfo&) {}) : callback;
  tsfn_ = Napi::ThreadSafeFunction::New(env, target, name, 0, 1);
  if (!keepsProcessAlive) tsfn_.Unref(env);
}

JsChannel::~JsChannel() { Close(); }

bool JsChannel::Post(JsWork work) {
  if (closed_.load()) return false;
  auto* boxed = new JsWork(std::move(work));
  napi_status status = tsfn_.BlockingCall(boxed, [](Napi::Env env, Napi::Function callback, JsWork* job) {
    // env is null when the environment is tearing down: drop the work, never touch JS then.
    if (env != nullptr) (*job)(env, callback);
    delete job;
  });
  if (status != napi_ok) {
    delete boxed;
    return false;
  }
  return true;
}

void JsChannel::Close() {
  bool expected = false;
  if (closed_.compare_exchange_strong(expected, true)) tsfn_.Release();
}

std::shared_ptr<PendingPromise> PendingPromise::Create(Napi::Env env, const char* name) {
  return std::shared_ptr<PendingPromise>(new PendingPromise(env, name));
}

PendingPromise::PendingPromise(Napi::Env env, const char* name)
    : deferred_(Napi::Promise::Deferred::New(env)),
      channel_(new JsChannel(env, Napi::Function(), name, /*keepsProcessAlive=*/true)) {}

void PendingPromise::Resolve(std::function<Napi::Value(Napi::Env)> make) {
  if (settled_.exchange(true)) return;
  auto self = shared_from_this();
  channel_->Post([self, make](Napi::Env env, Napi::Function) {
    Napi::HandleScope scope(env);
    self->deferred_.Resolve(make(env));
  });
  channel_->Close();
}

void PendingPromise::Reject(Failure failure) {
  if (settled_.exchange(true)) return;
  auto self = shared_from_this();
  channel_->Post([self, failure](Napi::Env env, Napi::Function) {
    Napi::HandleScope scope(env);
    self->deferred_.Reject(ToJsError(env, failure).Value());
  });
  channel_->Close();
}

}  // namespace macvm
