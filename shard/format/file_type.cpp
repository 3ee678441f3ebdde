#include "shard/format/file_type.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace tandem {
namespace {

// ggml.h's ggml_type numbers and ggml.c's type_name of each (4, 5, 31-33, 36-38 are removed types).
struct TypeName {
  uint32_t id;
  const char* name;
};
constexpr TypeName kGgmlTypes[] = {
    {0, "f32"},      {1, "f16"},     {2, "q4_0"},    {3, "q4_1"},    {6, "q5_0"},    {7, "q5_1"},
    {8, "q8_0"},     {9, "q8_1"},    {10, "q2_K"},   {11, "q3_K"},   {12, "q4_K"},   {13, "q5_K"},
    {14, "q6_K"},    {15, "q8_K"},   {16, "iq2_xxs"}, {17, "iq2_xs"}, {18, "iq3_xxs"}, {19, "iq1_s"},
    {20, "iq4_nl"},  {21, "iq3_s"},  {22, "iq2_s"},  {23, "iq4_xs"}, {24, "i8"},     {25, "i16"},
    {26, "i32"},     {27, "i64"},    {28, "f64"},    {29, "iq1_m"},  {30, "bf16"},   {34, "tq1_0"},
    {35, "tq2_0"},   {39, "mxfp4"},  {40, "nvfp4"},  {41, "q1_0"},   {42, "q2_0"},
};

// llama.h's llama_ftype, llama-quantize's spelling of each, and llama_ftype_name's description
// (llama-model-loader.cpp).
struct FtypeName {
  uint32_t id;
  const char* name;  // LLAMA_FTYPE_<enum>: the enum is "MOSTLY_" + name except ALL_F32
  const char* description;
};
constexpr FtypeName kFtypes[] = {
    {0, "F32", "all F32"},
    {1, "F16", "F16"},
    {2, "Q4_0", "Q4_0"},
    {3, "Q4_1", "Q4_1"},
    {7, "Q8_0", "Q8_0"},
    {8, "Q5_0", "Q5_0"},
    {9, "Q5_1", "Q5_1"},
    {10, "Q2_K", "Q2_K - Medium"},
    {11, "Q3_K_S", "Q3_K - Small"},
    {12, "Q3_K_M", "Q3_K - Medium"},
    {13, "Q3_K_L", "Q3_K - Large"},
    {14, "Q4_K_S", "Q4_K - Small"},
    {15, "Q4_K_M", "Q4_K - Medium"},
    {16, "Q5_K_S", "Q5_K - Small"},
    {17, "Q5_K_M", "Q5_K - Medium"},
    {18, "Q6_K", "Q6_K"},
    {19, "IQ2_XXS", "IQ2_XXS - 2.0625 bpw"},
    {20, "IQ2_XS", "IQ2_XS - 2.3125 bpw"},
    {21, "Q2_K_S", "Q2_K - Small"},
    {22, "IQ3_XS", "IQ3_XS - 3.3 bpw"},
    {23, "IQ3_XXS", "IQ3_XXS - 3.0625 bpw"},
    {24, "IQ1_S", "IQ1_S - 1.5625 bpw"},
    {25, "IQ4_NL", "IQ4_NL - 4.5 bpw"},
    {26, "IQ3_S", "IQ3_S - 3.4375 bpw"},
    {27, "IQ3_M", "IQ3_S mix - 3.66 bpw"},
    {28, "IQ2_S", "IQ2_S - 2.5 bpw"},
    {29, "IQ2_M", "IQ2_M - 2.7 bpw"},
    {30, "IQ4_XS", "IQ4_XS - 4.25 bpw"},
    {31, "IQ1_M", "IQ1_M - 1.75 bpw"},
    {32, "BF16", "BF16"},
    {36, "TQ1_0", "TQ1_0 - 1.69 bpw ternary"},
    {37, "TQ2_0", "TQ2_0 - 2.06 bpw ternary"},
    {38, "MXFP4_MOE", "MXFP4 MoE"},
    {39, "NVFP4", "NVFP4"},
    {40, "Q1_0", "Q1_0"},
    {41, "Q2_0", "Q2_0"},
};

// llama_model_loader's guess from the most common tensor type (a K-quant guesses the _M mix).
uint32_t ftype_for_ggml_type(uint32_t t) {
  switch (t) {
    case 0: return 0;    // F32
    case 1: return 1;    // F16
    case 30: return 32;  // BF16
    case 2: return 2;    // Q4_0
    case 3: return 3;    // Q4_1
    case 6: return 8;    // Q5_0
    case 7: return 9;    // Q5_1
    case 8: return 7;    // Q8_0
    case 10: return 10;  // Q2_K
    case 11: return 12;  // Q3_K -> Q3_K_M
    case 12: return 15;  // Q4_K -> Q4_K_M
    case 13: return 17;  // Q5_K -> Q5_K_M
    case 14: return 18;  // Q6_K
    case 34: return 36;  // TQ1_0
    case 35: return 37;  // TQ2_0
    case 16: return 19;  // IQ2_XXS
    case 17: return 20;  // IQ2_XS
    case 22: return 28;  // IQ2_S
    case 18: return 23;  // IQ3_XXS
    case 19: return 24;  // IQ1_S
    case 29: return 31;  // IQ1_M
    case 20: return 25;  // IQ4_NL
    case 23: return 30;  // IQ4_XS
    case 21: return 26;  // IQ3_S
    case 40: return 39;  // NVFP4
    case 41: return 40;  // Q1_0
    case 42: return 41;  // Q2_0
    default: return 0;   // llama.cpp warns "unknown type" and says all F32
  }
}

}  // namespace

std::string ggml_type_name(uint32_t t) {
  for (const TypeName& n : kGgmlTypes)
    if (n.id == t) return n.name;
  return fmt::format("type {}", t);
}

FileType file_type_from_id(uint32_t id, bool guessed) {
  FileType ft;
  ft.id = id;
  ft.guessed = guessed;
  const auto it = std::find_if(std::begin(kFtypes), std::end(kFtypes), [&](const FtypeName& f) { return f.id == id; });
  ft.known = it != std::end(kFtypes);
  if (ft.known) {
    ft.name = it->name;
    ft.enum_name = id == 0 ? "LLAMA_FTYPE_ALL_F32" : fmt::format("LLAMA_FTYPE_MOSTLY_{}", it->name);
    ft.description = it->description;
  } else {
    ft.name = fmt::format("unknown ({})", id);
    ft.enum_name = fmt::format("{}", id);
    ft.description = "unknown, may not work";
  }
  if (guessed) ft.description = "(guessed) " + ft.description;
  return ft;
}

FileType file_type_of(const ModelFile& m) {
  if (m.gguf)
    if (auto v = m.gguf->get_int("general.file_type"); v && *v >= 0 && *v <= UINT32_MAX)
      return file_type_from_id(static_cast<uint32_t>(*v));
  // As llama_model_loader: over the tensors in name order (its std::map), the first type to reach
  // the highest count.
  std::vector<const TensorRef*> by_name;
  for (const auto& t : m.tensors)
    if (!m.is_tied_alias(t)) by_name.push_back(&t);
  std::sort(by_name.begin(), by_name.end(), [](auto* a, auto* b) { return a->name < b->name; });
  std::map<uint32_t, int> n;
  uint32_t best = 0;
  int best_n = 0;
  for (const TensorRef* t : by_name) {
    const uint32_t type = static_cast<uint32_t>(t->type);
    if (best_n < ++n[type]) best_n = n[type], best = type;
  }
  return file_type_from_id(ftype_for_ggml_type(best), true);
}

std::map<std::string, int> tensor_type_counts(const ModelFile& m) {
  std::map<std::string, int> counts;
  for (const auto& t : m.tensors)
    if (!m.is_tied_alias(t)) ++counts[ggml_type_name(static_cast<uint32_t>(t.type))];
  return counts;
}

}  // namespace tandem
