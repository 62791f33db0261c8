# The Virtualization.framework addon. Built only on macOS (scripts/build-native.mjs refuses
# elsewhere, and this file is not at the package root, so `npm install` never builds it).
# Keep the flags in step with scripts/check-native.mjs, which compile-checks the same sources.
{
  "targets": [
    {
      "target_name": "macvm_vz",
      "conditions": [
        ["OS=='mac'", {
          "sources": [
            "src/addon.mm",
            "src/bridge.mm",
            "src/installer.mm",
            "src/restore-image.mm",
            "src/virtual-machine.mm",
            "src/vm-spec.mm"
          ],
          "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")", "src"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
          "xcode_settings": {
            "MACOSX_DEPLOYMENT_TARGET": "12.0",
            "CLANG_ENABLE_OBJC_ARC": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "CLANG_CXX_LIBRARY": "libc++",
            "GCC_ENABLE_CPP_EXCEPTIONS": "NO",
            "OTHER_CPLUSPLUSFLAGS": ["-fobjc-arc", "-Wall", "-Wno-unused-parameter"]
          },
          "link_settings": {
            "libraries": ["-framework Foundation", "-framework Virtualization"]
          }
        }]
      ]
    }
  ]
}
