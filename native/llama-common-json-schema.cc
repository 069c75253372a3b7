// llama.cpp's common/json-schema-to-grammar.cpp (JSON schema to GBNF), compiled as a part of the
// addon for the reason native/llama-common-json.cc gives; grammar.cc defines the three string
// helpers of common.cpp it calls.
#include "json-schema-to-grammar.cpp"
