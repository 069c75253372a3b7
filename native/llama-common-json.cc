// llama.cpp's common/json.cpp (the JSON value type of its JSON-schema converter), compiled as a
// part of the addon: llama.cpp's common/ library is not built (LLAMA_BUILD_COMMON=OFF), and a
// source of our own keeps both build paths (CMake, node-gyp) on one list, native/*.cc.
#include "json.cpp"
