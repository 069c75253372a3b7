// The error codes the addon's throws and rejections carry as `code`: the one list, mirrored by
// lib/native/error-codes.ts (test/error-codes.test.ts checks that the two agree and that no code is
// written out anywhere else in native/).
#pragma once

namespace layerskip::codes {

constexpr const char * ABORTED = "ERR_ABORTED";                    // abort() or dispose() stopped the operation
constexpr const char * BUSY = "ERR_BUSY";                          // another operation runs on the context
constexpr const char * CONTEXT_FULL = "ERR_CONTEXT_FULL";          // no KV cells left for the tokens asked for
constexpr const char * DISPOSED = "ERR_DISPOSED";                  // the object was disposed
constexpr const char * NO_DRAFT = "ERR_NO_DRAFT";                  // a verification without pending drafts
constexpr const char * PENDING_DRAFT = "ERR_PENDING_DRAFT";        // a full decode while drafts await verification
constexpr const char * RPC = "ERR_RPC";                            // an RPC server was lost or timed out
constexpr const char * RPC_SERVER = "ERR_RPC_SERVER";              // the RPC server could not start
constexpr const char * SAVE = "ERR_SAVE";                          // writing a model file failed
constexpr const char * SPLIT_DECODED = "ERR_SPLIT_DECODED";        // positions split-decoded from another layer
constexpr const char * TOKEN_RANGE = "ERR_TOKEN_RANGE";            // a token id outside the vocabulary
constexpr const char * TRAIN_MODEL = "ERR_TRAIN_MODEL";            // the model cannot be trained as asked
constexpr const char * UNSUPPORTED_TEMPLATE = "ERR_UNSUPPORTED_TEMPLATE";  // llama.cpp's built-in renderer does not know it

}  // namespace layerskip::codes
