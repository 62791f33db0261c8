#include "virtual-machine.h"

#import <Virtualization/Virtualization.h>

#include <string>

namespace macvm {

const char* StateName(VZVirtualMachineState state) {
  switch (state) {
    case VZVirtualMachineStateStopped: return "stopped";
    case VZVirtualMachineStateRunning: return "running";
    case VZVirtualMachineStatePaused: return "paused";
    case VZVirtualMachineStateError: return "error";
    case VZVirtualMachineStateStarting: return "starting";
    case VZVirtualMachineStatePausing: return "pausing";
    case VZVirtualMachineStateResuming: return "resuming";
    case VZVirtualMachineStateStopping: return "stopping";
  }
  return "unknown";
}

// Events as plain data, built on the VZ queue, turned into JS objects on the JS thread.
static void PostEvent(const std::shared_ptr<JsChannel>& events, std::string type, std::string detail,
                      std::shared_ptr<Failure> failure) {
  if (!events) return;
  events->Post([type, detail, failure](Napi::Env env, Napi::Function onEvent) {
    Napi::HandleScope scope(env);
    Napi::Object event = Napi::Object::New(env);
    event.Set("type", type);
    if (type == "state") event.Set("state", detail);
    if (type == "stopped") event.Set("reason", detail);
    if (failure) event.Set("error", ToJsError(env, *failure).Value());
    onEvent.Call({event});
  });
}

}  // namespace macvm

// Delegate and KVO target. VZ calls both on the VM's queue.
@interface MacvmVmObserver : NSObject <VZVirtualMachineDelegate>
- (instancetype)initWithEvents:(std::shared_ptr<macvm::JsChannel>)events;
@end

@implementation MacvmVmObserver {
  std::shared_ptr<macvm::JsChannel> _events;
}

- (instancetype)initWithEvents:(std::shared_ptr<macvm::JsChannel>)events {
  if ((self = [super init])) _events = events;
  return self;
}

- (void)observeValueForKeyPath:(NSString*)keyPath
                      ofObject:(id)object
                        change:(NSDictionary<NSKeyValueChangeKey, id>*)change
                       context:(void*)context {
  if (![keyPath isEqualToString:@"state"]) return;
  VZVirtualMachine* vm = (VZVirtualMachine*)object;  // on the VM's queue: reading state is allowed here
  macvm::PostEvent(_events, "state", macvm::StateName(vm.state), nullptr);
}

- (void)guestDidStopVirtualMachine:(VZVirtualMachine*)virtualMachine {
  macvm::PostEvent(_events, "stopped", "guest", nullptr);
}

- (void)virtualMachine:(VZVirtualMachine*)virtualMachine didStopWithError:(NSError*)error {
  auto failure = std::make_shared<macvm::Failure>(macvm::FailureFromNSError(error, "MACVM_VM_STOPPED"));
  macvm::PostEvent(_events, "stopped", "error", failure);
}

@end

namespace macvm {

void VirtualMachine::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = DefineClass(env, "VirtualMachine",
                                           {
                                               InstanceMethod<&VirtualMachine::Start>("start"),
                                               InstanceMethod<&VirtualMachine::RequestStop>("requestStop"),
                                               InstanceMethod<&VirtualMachine::Stop>("stop"),
                                               InstanceMethod<&VirtualMachine::State>("state"),
                                               InstanceMethod<&VirtualMachine::Close>("close"),
                                           });
  exports.Set("VirtualMachine", constructor);
}

VirtualMachine::VirtualMachine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VirtualMachine>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "new VirtualMachine(spec, onEvent): onEvent must be a function").ThrowAsJavaScriptException();
    return;
  }
  VmSpec spec;
  if (!ReadVmSpec(env, info[0], &spec)) return;
  Failure failure;
  VZVirtualMachineConfiguration* configuration = BuildConfiguration(spec, &failure);
  if (configuration == nil) {
    ToJsError(env, failure).ThrowAsJavaScriptException();
    return;
  }
  recovery_ = spec.recovery;
  // The channel does not keep Node alive by itself: the vmhost's stdin does that.
  events_ = std::make_shared<JsChannel>(env, info[1].As<Napi::Function>(), "macvm-vm-events", false);
  queue_ = dispatch_queue_create("dev.macvm.vz.vm", DISPATCH_QUEUE_SERIAL);
  core_ = std::make_shared<VmCore>();
  auto core = core_;
  dispatch_queue_t queue = queue_;
  MacvmVmObserver* observer = [[MacvmVmObserver alloc] initWithEvents:events_];
  dispatch_async(queue, ^{
    core->vm = [[VZVirtualMachine alloc] initWithConfiguration:configuration queue:queue];
    core->observer = observer;
    core->vm.delegate = observer;
    [core->vm addObserver:observer forKeyPath:@"state" options:NSKeyValueObservingOptionNew context:nil];
  });
}

// Detaches delegate and KVO on the queue; the VM itself is released there too, when the
// last block holding `core` finishes.
static void Detach(dispatch_queue_t queue, std::shared_ptr<VmCore> core) {
  dispatch_async(queue, ^{
    if (core->observer != nil) {
      [core->vm removeObserver:core->observer forKeyPath:@"state"];
      core->vm.delegate = nil;
      core->observer = nil;
    }
  });
}

VirtualMachine::~VirtualMachine() {
  if (events_) events_->Close();
  if (queue_ != nil) Detach(queue_, core_);
}

Napi::Value VirtualMachine::Start(const Napi::CallbackInfo& info) {
  auto pending = PendingPromise::Create(info.Env(), "macvm-vm-start");
  bool recovery = recovery_;
  auto core = core_;
  dispatch_async(queue_, ^{
    void (^done)(NSError*) = ^(NSError* error) {
      if (error != nil) pending->Reject(FailureFromNSError(error, "MACVM_BOOT_FAILED"));
      else pending->Resolve([](Napi::Env env) { return env.Undefined(); });
    };
#if MACVM_SDK_HAS_MACOS13
    if (@available(macOS 13, *)) {
      VZMacOSVirtualMachineStartOptions* options = [[VZMacOSVirtualMachineStartOptions alloc] init];
      options.startUpFromMacOSRecovery = recovery;
      [core->vm startWithOptions:options completionHandler:done];
      return;
    }
#endif
    if (recovery) {
      Failure failure;
      failure.code = "MACVM_NOT_SUPPORTED";
      failure.message = "Booting into macOS Recovery needs macOS 13 or later on the host.";
      pending->Reject(failure);
      return;
    }
    [core->vm startWithCompletionHandler:done];
  });
  return pending->promise();
}

Napi::Value VirtualMachine::RequestStop(const Napi::CallbackInfo& info) {
  auto pending = PendingPromise::Create(info.Env(), "macvm-vm-request-stop");
  auto core = core_;
  dispatch_async(queue_, ^{
    NSError* error = nil;
    if (core->vm.canRequestStop && [core->vm requestStopWithError:&error]) {
      pending->Resolve([](Napi::Env env) { return env.Undefined(); });
    } else if (error != nil) {
      pending->Reject(FailureFromNSError(error, "MACVM_STOP_FAILED"));
    } else {
      Failure failure;
      failure.code = "MACVM_STOP_FAILED";
      failure.message = std::string("The VM cannot be asked to stop in state \"") + StateName(core->vm.state) + "\".";
      pending->Reject(failure);
    }
  });
  return pending->promise();
}

Napi::Value VirtualMachine::Stop(const Napi::CallbackInfo& info) {
  auto pending = PendingPromise::Create(info.Env(), "macvm-vm-stop");
  auto core = core_;
  dispatch_async(queue_, ^{
    if (core->vm.state == VZVirtualMachineStateStopped || core->vm.state == VZVirtualMachineStateError) {
      pending->Resolve([](Napi::Env env) { return env.Undefined(); });
      return;
    }
    // stopWithCompletionHandler: is macOS 12+, our minimum: a hard stop, like pulling the plug.
    [core->vm stopWithCompletionHandler:^(NSError* error) {
      if (error != nil) pending->Reject(FailureFromNSError(error, "MACVM_STOP_FAILED"));
      else pending->Resolve([](Napi::Env env) { return env.Undefined(); });
    }];
  });
  return pending->promise();
}

Napi::Value VirtualMachine::State(const Napi::CallbackInfo& info) {
  auto pending = PendingPromise::Create(info.Env(), "macvm-vm-state");
  auto core = core_;
  dispatch_async(queue_, ^{
    std::string state = StateName(core->vm.state);
    pending->Resolve([state](Napi::Env env) { return Napi::String::New(env, state); });
  });
  return pending->promise();
}

Napi::Value VirtualMachine::Close(const Napi::CallbackInfo& info) {
  if (events_) events_->Close();
  if (queue_ != nil) Detach(queue_, core_);
  return info.Env().Undefined();
}

}  // namespace macvm
