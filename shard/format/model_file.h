// One view over a model on disk, whatever its format: config, vocabulary and raw tensors (pointers
// into the mmap; nothing is read until a rank touches its shard).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shard/format/gguf_reader.h"
#include "shard/format/mapped_file.h"
#include "shard/format/model_config.h"
#include "shard/result.h"
#include "shard/format/vocab.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

// A tensor as stored: ggml dimension order (ne[0] contiguous), rows of ggml blocks.
struct TensorRef {
  std::string name;
  WeightType type = WeightType::F32;
  std::vector<int64_t> ne;
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;

  int64_t cols() const { return ne[0]; }                    // input dimension
  int64_t rows() const { return ne.size() > 1 ? ne[1] : 1; }  // output dimension
  size_t row_bytes() const { return tandem::row_bytes(type, ne[0]); }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
};

struct ModelFile {
  std::string path;
  std::string format;  // "gguf" | "llama2c"
  ModelConfig config;
  Vocab vocab;
  std::vector<TensorRef> tensors;
  std::optional<GgufFile> gguf;  // the parsed header, for GGUF inputs (metadata passthrough)
  std::shared_ptr<const MappedFile> map;

  const TensorRef* find(std::string_view name) const;
  // The tensor or a clear error naming the file; checks the shape [cols, rows] when given.
  Result<const TensorRef*> require(std::string_view name, int64_t cols = -1, int64_t rows = -1) const;
  uint64_t weight_bytes() const;  // sum of tensor sizes
  // The entry listed for a tied head: an alias of token_embd's bytes, not a tensor of the file.
  bool is_tied_alias(const TensorRef& t) const;
};

// Opens a GGUF file or a llama2.c checkpoint (detected by magic). For llama2.c the tokenizer is
// `tokenizer_path`, or else tok<vocab>.bin / tokenizer.bin beside the checkpoint.
// Checks: every tensor the config implies exists with the right shape; vocabulary size matches.
Result<ModelFile> open_model(const std::string& path, const std::string& tokenizer_path = "");

}  // namespace tandem
