// Hugging Face tokenizer import: a byte-level BPE `tokenizer.json` (and optionally its
// `tokenizer_config.json`) becomes the GGUF vocabulary llama.cpp's converter would write — tokens,
// types, merges, special tokens, add_bos/add_eos, tokenizer.ggml.pre (recognised from the
// pre_tokenizer's Split regexes, see pre_tokenizer.h) and tokenizer.chat_template.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shard/format/model_quantize.h"
#include "shard/format/vocab.h"
#include "shard/result.h"

namespace tandem {

struct HfImportOptions {
  std::string pre;  // tokenizer.ggml.pre to write instead of the recognised one ("" = recognise)
  // Names used in messages.
  std::string tokenizer_path = "tokenizer.json", config_path = "tokenizer_config.json";
};

struct HfTokenizer {
  Vocab vocab;  // add_bos_from_file / bos_from_file: whether the key gets written
  std::string chat_template;                                          // "" when there is none
  std::vector<std::pair<std::string, std::string>> named_templates;  // tokenizer.chat_template.<name>
  std::string pre_reason;             // how vocab.pre was chosen, for the command's report
  std::vector<std::string> warnings;  // what is imported but not reproduced (e.g. an NFC normalizer)
};

// Pure: the two files' texts in, the vocabulary out. `config_json` empty = no tokenizer_config.json.
// Errors name the file and the field ("tokenizer.json: model.merges[3] ...").
Result<HfTokenizer> import_hf_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                        const HfImportOptions& opt = {});

// The GGUF metadata of the imported vocabulary (no tensors): vocab_metadata's tokenizer.ggml.*
// keys plus the chat templates.
GgufMetadata hf_tokenizer_metadata(const HfTokenizer& t);

}  // namespace tandem
