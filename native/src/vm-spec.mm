#include "vm-spec.h"

namespace macvm {

namespace {

bool ReadString(Napi::Object object, const char* key, bool required, std::string* out) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined() || value.IsNull()) {
    if (!required) return true;
  } else if (value.IsString()) {
    *out = value.As<Napi::String>().Utf8Value();
    return true;
  }
  Napi::TypeError::New(object.Env(), std::string("VM spec: \"") + key + "\" must be a string").ThrowAsJavaScriptException();
  return false;
}

bool ReadNumber(Napi::Object object, const char* key, bool required, double* out) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined() || value.IsNull()) {
    if (!required) return true;
  } else if (value.IsNumber()) {
    double number = value.As<Napi::Number>().DoubleValue();
    if (number >= 0) {
      *out = number;
      return true;
    }
  }
  Napi::TypeError::New(object.Env(), std::string("VM spec: \"") + key + "\" must be a non-negative number").ThrowAsJavaScriptException();
  return false;
}

Failure Invalid(const std::string& message) {
  Failure failure;
  failure.code = "MACVM_IMAGE_CORRUPT";
  failure.message = message;
  return failure;
}

}  // namespace

bool ReadVmSpec(Napi::Env env, Napi::Value value, VmSpec* spec) {
  if (!value.IsObject()) {
    Napi::TypeError::New(env, "VM spec must be an object").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Object object = value.As<Napi::Object>();
  double cpus = 0, memory = 0, width = spec->displayWidth, height = spec->displayHeight, ppi = spec->displayPixelsPerInch;
  bool ok = ReadString(object, "diskPath", true, &spec->diskPath) &&
            ReadString(object, "auxiliaryStoragePath", true, &spec->auxiliaryStoragePath) &&
            ReadString(object, "hardwareModel", true, &spec->hardwareModel) &&
            ReadString(object, "machineIdentifier", true, &spec->machineIdentifier) &&
            ReadString(object, "macAddress", true, &spec->macAddress) &&
            ReadString(object, "consoleLogPath", false, &spec->consoleLogPath) &&
            ReadString(object, "diskSync", false, &spec->diskSync) &&
            ReadNumber(object, "cpuCount", true, &cpus) && ReadNumber(object, "memorySize", true, &memory) &&
            ReadNumber(object, "displayWidth", false, &width) && ReadNumber(object, "displayHeight", false, &height) &&
            ReadNumber(object, "displayPixelsPerInch", false, &ppi);
  if (!ok) return false;
  spec->cpuCount = static_cast<uint32_t>(cpus);
  spec->memorySize = static_cast<uint64_t>(memory);
  spec->displayWidth = static_cast<int32_t>(width);
  spec->displayHeight = static_cast<int32_t>(height);
  spec->displayPixelsPerInch = static_cast<int32_t>(ppi);
  spec->memoryBalloon = object.Get("memoryBalloon").ToBoolean().Value();
  spec->recovery = object.Get("recovery").ToBoolean().Value();
  return true;
}

NSData* DataFromBase64(const std::string& base64) {
  return [[NSData alloc] initWithBase64EncodedString:ToNSString(base64) options:NSDataBase64DecodingIgnoreUnknownCharacters];
}

static VZDiskImageSynchronizationMode SyncMode(const std::string& name) {
  if (name == "none") return VZDiskImageSynchronizationModeNone;
  if (name == "fsync") return VZDiskImageSynchronizationModeFsync;
  return VZDiskImageSynchronizationModeFull;
}

VZVirtualMachineConfiguration* BuildConfiguration(const VmSpec& spec, Failure* failure) {
  NSData* modelData = DataFromBase64(spec.hardwareModel);
  VZMacHardwareModel* hardwareModel = modelData ? [[VZMacHardwareModel alloc] initWithDataRepresentation:modelData] : nil;
  if (hardwareModel == nil) {
    *failure = Invalid("The bundle's hardwareModel is not a VZMacHardwareModel data representation.");
    return nil;
  }
  if (!hardwareModel.supported) {
    *failure = Invalid("This host's macOS cannot run the bundle's hardware model; update macOS on the host.");
    failure->code = "MACVM_PROVIDER_UNAVAILABLE";
    return nil;
  }
  NSData* identifierData = DataFromBase64(spec.machineIdentifier);
  VZMacMachineIdentifier* machineIdentifier =
      identifierData ? [[VZMacMachineIdentifier alloc] initWithDataRepresentation:identifierData] : nil;
  if (machineIdentifier == nil) {
    *failure = Invalid("The bundle's ecid is not a VZMacMachineIdentifier data representation.");
    return nil;
  }
  VZMACAddress* macAddress = [[VZMACAddress alloc] initWithString:ToNSString(spec.macAddress)];
  if (macAddress == nil) {
    *failure = Invalid("The bundle's macAddress \"" + spec.macAddress + "\" is not a MAC address.");
    return nil;
  }

  VZMacPlatformConfiguration* platform = [[VZMacPlatformConfiguration alloc] init];
  platform.hardwareModel = hardwareModel;
  platform.machineIdentifier = machineIdentifier;
  platform.auxiliaryStorage =
      [[VZMacAuxiliaryStorage alloc] initWithContentsOfURL:[NSURL fileURLWithPath:ToNSString(spec.auxiliaryStoragePath)]];

  VZVirtualMachineConfiguration* configuration = [[VZVirtualMachineConfiguration alloc] init];
  configuration.platform = platform;
  configuration.bootLoader = [[VZMacOSBootLoader alloc] init];
  configuration.CPUCount = spec.cpuCount;
  configuration.memorySize = spec.memorySize;

  NSError* error = nil;
  VZDiskImageStorageDeviceAttachment* disk =
      [[VZDiskImageStorageDeviceAttachment alloc] initWithURL:[NSURL fileURLWithPath:ToNSString(spec.diskPath)]
                                                     readOnly:NO
                                                  cachingMode:VZDiskImageCachingModeAutomatic
                                          synchronizationMode:SyncMode(spec.diskSync)
                                                        error:&error];
  if (disk == nil) {
    *failure = FailureFromNSError(error, "MACVM_IMAGE_CORRUPT");
    return nil;
  }
  configuration.storageDevices = @[ [[VZVirtioBlockDeviceConfiguration alloc] initWithAttachment:disk] ];

  VZVirtioNetworkDeviceConfiguration* network = [[VZVirtioNetworkDeviceConfiguration alloc] init];
  network.attachment = [[VZNATNetworkDeviceAttachment alloc] init];
  network.MACAddress = macAddress;
  configuration.networkDevices = @[ network ];

  // The graphics device stays even headless: macOS guests expect a display, and without one
  // WindowServer-dependent work (screenshots, browsers) fails in the guest.
  VZMacGraphicsDeviceConfiguration* graphics = [[VZMacGraphicsDeviceConfiguration alloc] init];
  graphics.displays = @[ [[VZMacGraphicsDisplayConfiguration alloc] initWithWidthInPixels:spec.displayWidth
                                                                           heightInPixels:spec.displayHeight
                                                                            pixelsPerInch:spec.displayPixelsPerInch] ];
  configuration.graphicsDevices = @[ graphics ];
  configuration.keyboards = @[ [[VZUSBKeyboardConfiguration alloc] init] ];
  configuration.pointingDevices = @[ [[VZUSBScreenCoordinatePointingDeviceConfiguration alloc] init] ];
  configuration.entropyDevices = @[ [[VZVirtioEntropyDeviceConfiguration alloc] init] ];
  if (spec.memoryBalloon) {
    configuration.memoryBalloonDevices = @[ [[VZVirtioTraditionalMemoryBalloonDeviceConfiguration alloc] init] ];
  }
  if (!spec.consoleLogPath.empty()) {
    VZFileSerialPortAttachment* log =
        [[VZFileSerialPortAttachment alloc] initWithURL:[NSURL fileURLWithPath:ToNSString(spec.consoleLogPath)]
                                                 append:YES
                                                  error:&error];
    if (log == nil) {
      *failure = FailureFromNSError(error, "MACVM_BOOT_FAILED");
      return nil;
    }
    VZVirtioConsoleDeviceSerialPortConfiguration* console = [[VZVirtioConsoleDeviceSerialPortConfiguration alloc] init];
    console.attachment = log;
    configuration.serialPorts = @[ console ];
  }

  if (![configuration validateWithError:&error]) {
    *failure = FailureFromNSError(error, "MACVM_BOOT_FAILED");
    return nil;
  }
  return configuration;
}

}  // namespace macvm
