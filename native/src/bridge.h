// Crossing from Virtualization.framework's queues back to JavaScript.
//
// VZ calls its completion handlers, delegate methods and KVO observers on the VM's private
// serial queue (or, for restore images, on an arbitrary queue). JavaScript may only be
// touched on the Node main thread, so everything that leaves a VZ queue is first turned into
// plain C++ data (Failure, std::string, numbers) and then handed to a
// Napi::ThreadSafeFunction, which runs the JS-side work on the main thread.
#pragma once

#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#ifdef __OBJC__
#import <Foundation/Foundation.h>
#endif

// The SDK we compile against may be older than the OS we run on: newer APIs need both a
// compile-time check (is it declared at all?) and a runtime @available check.
#if defined(__MAC_13_0) && __MAC_OS_X_VERSION_MAX_ALLOWED >= __MAC_13_0
#define MACVM_SDK_HAS_MACOS13 1
#else
#define MACVM_SDK_HAS_MACOS13 0
#endif

namespace macvm {

// A failure as plain data, safe to move between threads.
struct Failure {
  std::string code;     // a MacvmError code, e.g. "MACVM_SLOT_LIMIT"
  std::string message;  // what happened, in the framework's words
  std::string domain;   // NSError domain ("" when not from an NSError)
  long nativeCode = 0;  // NSError code
};

#ifdef __OBJC__
// Maps an NSError (VZErrorDomain or other) to a Failure whose code the JS side turns into
// a MacvmError; `fallbackCode` is used when the error says nothing more specific.
Failure FailureFromNSError(NSError* error, const char* fallbackCode);
NSString* ToNSString(const std::string& value);
std::string FromNSString(NSString* value);
#endif

Napi::Error ToJsError(Napi::Env env, const Failure& failure);

// Work to run on the JS thread; gets the JS callback the ThreadSafeFunction wraps.
using JsWork = std::function<void(Napi::Env, Napi::Function)>;

// One ThreadSafeFunction: Post() from any thread, the work runs on the JS thread.
class JsChannel {
 public:
  // `callback` may be empty (then the work receives an empty Function).
  JsChannel(Napi::Env env, Napi::Function callback, const char* name, bool keepsProcessAlive);
  ~JsChannel();
  JsChannel(const JsChannel&) = delete;
  JsChannel& operator=(const JsChannel&) = delete;

  // Any thread. Returns false once the channel is closed (the work is then dropped).
  bool Post(JsWork work);
  // Any thread, idempotent: no more work is accepted.
  void Close();

 private:
  Napi::ThreadSafeFunction tsfn_;
  std::atomic<bool> closed_{false};
};

// A JS promise settled from any thread, exactly once.
class PendingPromise : public std::enable_shared_from_this<PendingPromise> {
 public:
  static std::shared_ptr<PendingPromise> Create(Napi::Env env, const char* name);
  Napi::Promise promise() const { return deferred_.Promise(); }

  // Any thread. `make` runs on the JS thread and builds the resolution value.
  void Resolve(std::function<Napi::Value(Napi::Env)> make);
  void Reject(Failure failure);

 private:
  PendingPromise(Napi::Env env, const char* name);
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<JsChannel> channel_;
  std::atomic<bool> settled_{false};
};

}  // namespace macvm
