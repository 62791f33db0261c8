#pragma once
#include <napi.h>

namespace macvm {
// newMachineIdentifier(): string                 base64 of a fresh VZMacMachineIdentifier
// createAuxiliaryStorage(path, hardwareModel)     creates nvram.bin for a new bundle (overwrites)
// installMacOS(spec, ipswPath, onProgress): Promise<void>
//     runs VZMacOSInstaller on a VM built from `spec`, on that VM's private queue;
//     onProgress(fractionCompleted) from KVO on installer.progress.
void RegisterInstaller(Napi::Env env, Napi::Object exports);
}  // namespace macvm
