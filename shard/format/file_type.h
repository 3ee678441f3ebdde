// How llama.cpp names a file's weight types: the ggml name of every tensor type (ggml.c's
// type_traits: "f32", "q4_K", ...) and the file type, general.file_type (llama.h's llama_ftype:
// LLAMA_FTYPE_MOSTLY_Q4_K_M = 15 is "Q4_K_M", printed as "Q4_K - Medium"). A file without
// general.file_type gets llama.cpp's guess from its most common tensor type, marked guessed.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "shard/format/model_file.h"

namespace tandem {

// ggml's name of a tensor type number; "type <n>" for a number ggml does not define.
std::string ggml_type_name(uint32_t ggml_type);

struct FileType {
  uint32_t id = 0;       // llama_ftype
  bool guessed = false;  // no general.file_type: derived from the tensor types, as llama.cpp does
  bool known = true;     // id is one llama.cpp defines
  std::string name;         // "Q4_K_M", "Q8_0", "F16", "ALL_F32" (llama-quantize's spelling)
  std::string enum_name;    // "LLAMA_FTYPE_MOSTLY_Q4_K_M"
  std::string description;  // llama_ftype_name: "Q4_K - Medium", "(guessed) Q8_0"
};

// A model's file type: general.file_type, else (also for llama.2c checkpoints) llama.cpp's guess.
FileType file_type_of(const ModelFile& m);
FileType file_type_from_id(uint32_t id, bool guessed = false);

// Tensors per ggml type name ("q4_K" -> 193), over the tensors stored in the file (a tied head,
// listed as an alias of token_embd, is not stored).
std::map<std::string, int> tensor_type_counts(const ModelFile& m);

}  // namespace tandem
