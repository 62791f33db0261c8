// The VM object: one VZVirtualMachine on one private serial queue.
#pragma once

#include <napi.h>

#include <memory>

#include "bridge.h"
#include "vm-spec.h"

#import <Virtualization/Virtualization.h>

@class MacvmVmObserver;

namespace macvm {

// JS: new VirtualMachine(spec, onEvent)
//   start(): Promise<void>        requestStop(): Promise<void>     stop(): Promise<void>
//   state(): Promise<string>      close(): void  (drops the event callback)
// onEvent({type:'state', state}) | ({type:'stopped', reason:'guest'}) | ({type:'stopped', reason:'error', error})
//
// THE QUEUE RULE: the VZVirtualMachine is created with initWithConfiguration:queue: and from
// then on is touched only inside dispatch_async(queue_, ...). Results come back through
// PendingPromise / JsChannel (thread-safe functions), never by calling JS from the queue.
class VirtualMachine : public Napi::ObjectWrap<VirtualMachine> {
 public:
  static void Register(Napi::Env env, Napi::Object exports);
  explicit VirtualMachine(const Napi::CallbackInfo& info);
  ~VirtualMachine() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value RequestStop(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value State(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  dispatch_queue_t queue_ = nil;
  // Shared with every block queued on queue_, so a VM object collected by JS while work is
  // still queued cannot leave a block pointing at freed memory.
  std::shared_ptr<struct VmCore> core_;
  std::shared_ptr<JsChannel> events_;
  bool recovery_ = false;
};

// The framework objects of one VM; its fields are read and written only on the VM's queue.
struct VmCore {
  VZVirtualMachine* vm = nil;
  MacvmVmObserver* observer = nil;  // VZ holds its delegate weakly; this keeps it alive
};

const char* StateName(VZVirtualMachineState state);

}  // namespace macvm
