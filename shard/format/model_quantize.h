// Format conversion: any loadable model (GGUF or llama2.c) to a GGUF whose 2-D weights are all of
// one type, plus the metadata llama.cpp's converters write, shared with the synthetic writer.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shard/format/gguf_reader.h"
#include "shard/format/model_config.h"
#include "shard/format/model_file.h"
#include "shard/result.h"
#include "shard/format/vocab.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

// llama.cpp's `general.file_type` (llama_ftype) for a model whose matrices are all `t`.
uint32_t llama_file_type(WeightType t);

// general.architecture/name/file_type and the `<arch>.*` hyperparameter keys for `c`.
GgufMetadata model_metadata(const ModelConfig& c, WeightType t);

// `tokenizer.ggml.*` keys for a vocabulary, so vocab_from_gguf reads back the same Vocab.
GgufMetadata vocab_metadata(const Vocab& v);

// Writes `out`: every tensor with two or more dimensions converted to `type` row by row
// (dequantize_row -> quantize_row; copied when already of that type), 1-D tensors as f32, a tied
// head kept tied. GGUF inputs keep their metadata (file type updated); llama2.c inputs get what
// llama.cpp's converter writes. Errors name the tensor whose rows cannot hold whole blocks.
// The type a matrix with rows of `cols` elements is stored in when `requested` is asked for: the
// requested one when whole blocks fit, else the nearest that fits (q4_k -> q4_0, q5_k -> q5_0, q6_k -> q8_0,
// then f16), as llama.cpp falls back.
WeightType matrix_type_for(WeightType requested, int64_t cols);

Status quantize_model(const ModelFile& in, const std::string& out, WeightType type, int threads = 0);

}  // namespace tandem
