// What a VM is made of, as plain data read from the JS spec object. The JS side
// (src/vm/vz/vm-spec.ts) builds it from a Tart-compatible bundle's config.json.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#ifdef __OBJC__
#import <Virtualization/Virtualization.h>
#endif

#include "bridge.h"

namespace macvm {

struct VmSpec {
  std::string diskPath;          // <bundle>/disk.img
  std::string auxiliaryStoragePath;  // <bundle>/nvram.bin
  std::string hardwareModel;     // base64 of VZMacHardwareModel.dataRepresentation
  std::string machineIdentifier; // base64 of VZMacMachineIdentifier.dataRepresentation
  std::string macAddress;        // "aa:bb:cc:dd:ee:ff"
  std::string consoleLogPath;    // optional: virtio console → file
  std::string diskSync = "full"; // Tart's "sync" key: full | fsync | none
  uint32_t cpuCount = 0;
  uint64_t memorySize = 0;       // bytes
  int32_t displayWidth = 1024;
  int32_t displayHeight = 768;
  int32_t displayPixelsPerInch = 72;
  bool memoryBalloon = false;
  bool recovery = false;         // boot into macOS Recovery (macOS 13+ only)
};

// Reads a spec object; on a bad value throws a JS TypeError and returns false.
bool ReadVmSpec(Napi::Env env, Napi::Value value, VmSpec* spec);

#ifdef __OBJC__
// Builds and validates the configuration. Returns nil and fills `failure` when it is unusable.
VZVirtualMachineConfiguration* BuildConfiguration(const VmSpec& spec, Failure* failure);
NSData* DataFromBase64(const std::string& base64);
#endif

}  // namespace macvm
