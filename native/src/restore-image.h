#pragma once
#include <napi.h>

namespace macvm {
// loadRestoreImage(path): Promise<RestoreImageInfo>      (+[VZMacOSRestoreImage loadFileURL:completionHandler:])
// fetchLatestRestoreImage(): Promise<RestoreImageInfo>   (+fetchLatestSupportedWithCompletionHandler:)
// RestoreImageInfo: { url, buildVersion, osVersion, supported, minimumCpuCount?, minimumMemoryBytes?, hardwareModel? }
void RegisterRestoreImage(Napi::Env env, Napi::Object exports);
}  // namespace macvm
