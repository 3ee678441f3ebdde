// tokenizer.json (+ tokenizer_config.json) -> GGUF vocabulary, with the choices llama.cpp's
// convert_hf_to_gguf.py makes: added tokens that are special (or look like "<|...|>") are control
// tokens, the other added tokens user-defined (their text verbatim); ids no token has become
// "[PAD<id>]" unused tokens; add_bos/add_eos come from tokenizer_config.json, else from a
// TemplateProcessing post-processor, else are left to the pre-tokenizer's default.
#include "shard/tokenizer/hf_import.h"

#include <nlohmann/json.hpp>

#include <map>

#include "shard/format/gguf_writer.h"
#include "shard/tokenizer/chat_template.h"
#include "shard/tokenizer/pre_tokenizer.h"

namespace tandem {
namespace {

using nlohmann::json;

// obj[key] without a copy, or null.
const json& member(const json& obj, const char* key) {
  static const json null;
  if (!obj.is_object()) return null;
  auto it = obj.find(key);
  return it == obj.end() ? null : *it;
}

Result<json> parse_json(std::string_view text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return make_error("{}: not valid JSON: {}", path, e.what());
  }
}

// "<|...|>" and DeepSeek's "<｜...｜>" are control tokens even when not marked special, as the
// converter's does_token_look_special has it.
bool looks_special(const std::string& t) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return t.size() >= open.size() + close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;
  };
  return wrapped("<|", "|>") || wrapped("<\xEF\xBD\x9C", "\xEF\xBD\x9C>");
}

// The tokenizer.json pre_tokenizer as the regexes it splits with (see PreTokenizerSpec::hf_patterns).
Status pre_tokenizer_patterns(const json& pre, const std::string& path, std::vector<std::string>& out, bool& byte_level) {
  if (!pre.is_object() || !pre.contains("type") || !pre["type"].is_string())
    return make_error("{}: pre_tokenizer is {}: a byte-level BPE tokenizer has one (Split/ByteLevel)", path,
                      pre.is_null() ? "null" : "not an object with a \"type\"");
  const std::string type = pre["type"];
  if (type == "Sequence") {
    if (!pre.contains("pretokenizers") || !pre["pretokenizers"].is_array())
      return make_error("{}: pre_tokenizer Sequence has no \"pretokenizers\" array", path);
    for (const auto& p : pre["pretokenizers"]) TANDEM_TRY(pre_tokenizer_patterns(p, path, out, byte_level));
    return ok_status();
  }
  if (type == "Split") {
    const json& pat = member(pre, "pattern");
    if (!pat.is_object() || !pat.contains("Regex") || !pat["Regex"].is_string())
      return make_error("{}: pre_tokenizer Split has no pattern.Regex (a String pattern is not a llama.cpp pre-tokenizer)",
                        path);
    if (pre.value("behavior", std::string()) != "Isolated" || pre.value("invert", false))
      return make_error("{}: pre_tokenizer Split /{}/ has behavior '{}'{}: llama.cpp's pre-tokenizers isolate matches",
                        path, pat["Regex"].get<std::string>(), pre.value("behavior", std::string()),
                        pre.value("invert", false) ? " inverted" : "");
    out.push_back(pat["Regex"]);
    return ok_status();
  }
  if (type == "ByteLevel") {
    if (pre.value("add_prefix_space", false))
      return make_error("{}: pre_tokenizer ByteLevel has add_prefix_space: llama.cpp's BPE adds no space in front", path);
    if (pre.value("use_regex", true)) out.emplace_back(kHfByteLevelRegex);
    byte_level = true;
    return ok_status();
  }
  if (type == "Digits") {
    out.emplace_back(pre.value("individual_digits", false) ? std::string(kHfDigitsRegex) : std::string(R"(\p{N}+)"));
    return ok_status();
  }
  return make_error("{}: pre_tokenizer '{}' is not one llama.cpp's BPE pre-tokenizers are made of (Split, ByteLevel, Digits)",
                    path, type);
}

// A special-token entry of tokenizer_config.json: "text", {"content": "text", ...} or null.
Result<std::optional<std::string>> token_text(const json& cfg, const char* key, const std::string& path) {
  if (!cfg.contains(key) || cfg[key].is_null()) return std::optional<std::string>();
  const json& v = cfg[key];
  if (v.is_string()) return std::optional<std::string>(v.get<std::string>());
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return std::optional<std::string>(v["content"].get<std::string>());
  return make_error("{}: {} is neither a string nor an object with a \"content\" string", path, key);
}

std::string describe(const std::vector<std::string>& patterns) {
  std::string s;
  for (const auto& p : patterns) s += (s.empty() ? "/" : ", /") + p + "/";
  return s.empty() ? "no regex" : s;
}

Result<HfTokenizer> import_impl(std::string_view tokenizer_json, std::string_view config_json, const HfImportOptions& opt) {
  const std::string& tp = opt.tokenizer_path;
  auto parsed = parse_json(tokenizer_json, tp);
  if (!parsed) return parsed.error();
  const json& tj = *parsed;
  if (!tj.is_object()) return make_error("{}: not a tokenizer.json (the top level is not an object)", tp);
  HfTokenizer out;
  Vocab& v = out.vocab;
  v.kind = TokenizerKind::Bpe;
  v.add_bos = false, v.add_space_prefix = false;
  v.bos = v.eos = v.unk = v.pad = -1;

  // model: the BPE vocabulary and merges.
  const json& model = member(tj, "model");
  if (!model.is_object()) return make_error("{}: no \"model\" object", tp);
  const std::string mtype = model.value("type", std::string());
  if (mtype != "BPE")
    return make_error("{}: model.type is '{}': only byte-level BPE tokenizers can be imported", tp, mtype);
  if (!model.contains("vocab") || !model["vocab"].is_object() || model["vocab"].empty())
    return make_error("{}: model.vocab is missing or empty (an object token -> id)", tp);
  std::map<int64_t, std::pair<std::string, TokenType>> by_id;
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
      return make_error("{}: model.vocab['{}'] is not a token id (an integer in [0, 2^24))", tp, text);
    if (!by_id.emplace(id.get<int64_t>(), std::make_pair(text, TokenType::Normal)).second)
      return make_error("{}: model.vocab gives id {} to '{}' and to '{}'", tp, id.get<int64_t>(),
                        by_id[id.get<int64_t>()].first, text);
  }
  if (model.value("byte_fallback", false))
    out.warnings.push_back("model.byte_fallback is set; byte-level BPE never needs it and it is not used");

  const json& merges = member(model, "merges");
  if (!merges.is_array() || merges.empty()) return make_error("{}: model.merges is missing or empty", tp);
  v.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m;
      const size_t sp = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
        return make_error("{}: model.merges[{}] '{}' is not of the form 'left right'", tp, i, s);
      v.merges.push_back(s);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      const std::string a = m[0], b = m[1];
      if (a.empty() || b.empty() || a.find(' ') != std::string::npos || b.find(' ') != std::string::npos)
        return make_error("{}: model.merges[{}] [\"{}\", \"{}\"] has an empty side or a space, which GGUF's 'left "
                          "right' merges cannot hold", tp, i, a, b);
      v.merges.push_back(a + " " + b);
    } else {
      return make_error("{}: model.merges[{}] is neither \"left right\" nor [\"left\", \"right\"]", tp, i);
    }
  }

  // added_tokens: special -> control, the rest user-defined.
  if (tj.contains("added_tokens") && !tj["added_tokens"].is_null()) {
    if (!tj["added_tokens"].is_array()) return make_error("{}: added_tokens is not an array", tp);
    for (size_t i = 0; i < tj["added_tokens"].size(); ++i) {
      const json& a = tj["added_tokens"][i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string() || a["id"].get<int64_t>() < 0 || a["id"].get<int64_t>() >= (1 << 24))
        return make_error("{}: added_tokens[{}] needs an integer \"id\" in [0, 2^24) and a string \"content\"", tp, i);
      const int64_t id = a["id"];
      const std::string content = a["content"];
      if (content.empty()) return make_error("{}: added_tokens[{}] (id {}) has empty content", tp, i, id);
      const TokenType type =
          a.value("special", false) || looks_special(content) ? TokenType::Control : TokenType::UserDefined;
      auto it = by_id.find(id);
      if (it != by_id.end() && it->second.first != content && it->second.second == TokenType::Normal)
        out.warnings.push_back(fmt::format("added token {} '{}' replaces model.vocab's '{}'", id, content, it->second.first));
      by_id[id] = {content, type};
    }
  }

  const int64_t n = by_id.rbegin()->first + 1;
  v.tokens.resize(static_cast<size_t>(n));
  v.types.assign(static_cast<size_t>(n), static_cast<int32_t>(TokenType::Unused));
  size_t holes = 0;
  for (int64_t id = 0; id < n; ++id) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      v.tokens[id] = fmt::format("[PAD{}]", id);
      ++holes;
      continue;
    }
    v.tokens[id] = it->second.first;
    v.types[id] = static_cast<int32_t>(it->second.second);
  }
  if (holes) out.warnings.push_back(fmt::format("{} ids no token has became unused [PAD<id>] tokens", holes));
  std::map<std::string, int32_t> id_of;
  for (int64_t id = 0; id < n; ++id) {
    if (!id_of.emplace(v.tokens[id], static_cast<int32_t>(id)).second)
      return make_error("{}: token text '{}' has two ids ({} and {})", tp, v.tokens[id], id_of[v.tokens[id]], id);
  }

  // normalizer: none, or NFC (which llama.cpp does not apply either).
  if (tj.contains("normalizer") && !tj["normalizer"].is_null()) {
    const std::string nt = tj["normalizer"].value("type", std::string());
    if (nt != "NFC")
      return make_error("{}: normalizer '{}' is not supported: llama.cpp's BPE tokenizers normalize nothing", tp, nt);
    out.warnings.push_back("normalizer NFC is not applied (llama.cpp does not apply it): text not in NFC may tokenize "
                           "differently from transformers");
  }

  // pre_tokenizer -> tokenizer.ggml.pre.
  std::vector<std::string> patterns;
  bool byte_level = false;
  TANDEM_TRY(pre_tokenizer_patterns(member(tj, "pre_tokenizer"), tp, patterns, byte_level));
  if (!byte_level)
    return make_error("{}: the pre_tokenizer has no ByteLevel step: only byte-level BPE tokenizers can be imported", tp);
  const std::string_view recognised = pre_tokenizer_for_hf_patterns(patterns);
  if (!opt.pre.empty()) {
    auto spec = find_pre_tokenizer(opt.pre);
    if (!spec) return spec.error();
    v.pre = opt.pre;
    out.pre_reason = recognised.empty() ? fmt::format("given (the pre_tokenizer, {}, is none tandem recognises)", describe(patterns))
                     : recognised == (*spec)->names[0] ? fmt::format("given (and recognised from {})", describe(patterns))
                                                        : fmt::format("given (the pre_tokenizer is {}'s)", recognised);
  } else {
    if (recognised.empty())
      return make_error("{}: the pre_tokenizer ({}) is none of llama.cpp's pre-tokenizers tandem knows; name one with "
                        "--pre (supported: {})", tp, describe(patterns), supported_pre_tokenizers_text());
    v.pre = recognised;
    out.pre_reason = fmt::format("recognised from {}", describe(patterns));
  }
  auto spec = find_pre_tokenizer(v.pre);
  if (!spec) return spec.error();
  if (model.value("ignore_merges", false) != (*spec)->ignore_merges)
    out.warnings.push_back(fmt::format("model.ignore_merges is {} but llama.cpp's '{}' pre-tokenizer {} merges",
                                       model.value("ignore_merges", false), v.pre,
                                       (*spec)->ignore_merges ? "ignores" : "applies"));

  // post_processor: a TemplateProcessing template says whether BOS/EOS are added, and which.
  std::optional<std::string> bos_text, eos_text;
  auto template_of = [](const json& pp) -> const json* {
    if (!pp.is_object()) return nullptr;
    if (pp.value("type", std::string()) == "TemplateProcessing") return &pp;
    if (pp.value("type", std::string()) == "Sequence" && pp.contains("processors") && pp["processors"].is_array())
      for (const auto& p : pp["processors"])
        if (p.is_object() && p.value("type", std::string()) == "TemplateProcessing") return &p;
    return nullptr;
  };
  const json& post = member(tj, "post_processor");
  if (const json* tpl = template_of(post); tpl && (*tpl).contains("single") &&
                                                                          (*tpl)["single"].is_array() &&
                                                                          !(*tpl)["single"].empty()) {
    const json& single = (*tpl)["single"];
    auto special_id = [](const json& item) -> std::optional<std::string> {
      if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].contains("id") &&
          item["SpecialToken"]["id"].is_string())
        return item["SpecialToken"]["id"].get<std::string>();
      return std::nullopt;
    };
    const auto first = special_id(single.front()), last = special_id(single.back());
    v.add_bos = first.has_value(), v.add_bos_from_file = true;
    v.add_eos = single.size() > 1 && last.has_value();
    if (first) bos_text = first;
    if (v.add_eos) eos_text = last;
  }

  // tokenizer_config.json: the special tokens, add_bos/add_eos and the chat template.
  if (!config_json.empty()) {
    const std::string& cp = opt.config_path;
    auto cparsed = parse_json(config_json, cp);
    if (!cparsed) return cparsed.error();
    const json& cfg = *cparsed;
    if (!cfg.is_object()) return make_error("{}: the top level is not an object", cp);
    struct Special {
      const char* key;
      int32_t* id;
      std::optional<std::string>* text;
    };
    std::optional<std::string> unk_text, pad_text;
    for (const Special& s : {Special{"bos_token", &v.bos, &bos_text}, Special{"eos_token", &v.eos, &eos_text},
                             Special{"unk_token", &v.unk, &unk_text}, Special{"pad_token", &v.pad, &pad_text}}) {
      auto t = token_text(cfg, s.key, cp);
      if (!t) return t.error();
      if (*t) *s.text = *t;
    }
    for (const char* key : {"add_bos_token", "add_eos_token"}) {
      if (!cfg.contains(key) || cfg[key].is_null()) continue;
      if (!cfg[key].is_boolean()) return make_error("{}: {} is not a boolean", cp, key);
      if (std::string_view(key) == "add_bos_token") {
        v.add_bos = cfg[key].get<bool>(), v.add_bos_from_file = true;
      } else {
        v.add_eos = cfg[key].get<bool>();
      }
    }
    auto find = [&](const std::optional<std::string>& text, const char* key, int32_t& id) -> Status {
      if (!text) return ok_status();
      auto it = id_of.find(*text);
      if (it == id_of.end()) return make_error("{}: {} '{}' is not a token of {}", cp, key, *text, tp);
      id = it->second;
      return ok_status();
    };
    TANDEM_TRY(find(unk_text, "unk_token", v.unk));
    TANDEM_TRY(find(pad_text, "pad_token", v.pad));
    if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
      const json& ct = cfg["chat_template"];
      if (ct.is_string()) {
        out.chat_template = ct.get<std::string>();
      } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
        for (size_t i = 0; i < ct.size(); ++i) {
          if (!ct[i].is_object() || !ct[i].contains("name") || !ct[i]["name"].is_string() ||
              !ct[i].contains("template") || !ct[i]["template"].is_string())
            return make_error("{}: chat_template[{}] is not {{\"name\": ..., \"template\": ...}}", cp, i);
          const std::string name = ct[i]["name"], text = ct[i]["template"];
          if (name == "default")
            out.chat_template = text;
          else
            out.named_templates.emplace_back(name, text);
        }
      } else {
        return make_error("{}: chat_template is neither a string nor a list of named templates", cp);
      }
    }
  }
  auto find_special = [&](const std::optional<std::string>& text, const char* what, int32_t& id) -> Status {
    if (!text) return ok_status();
    auto it = id_of.find(*text);
    if (it == id_of.end())
      return make_error("{}: the {} token '{}' is not a token of {}", config_json.empty() ? tp : opt.config_path, what,
                        *text, tp);
    id = it->second;
    return ok_status();
  };
  TANDEM_TRY(find_special(bos_text, "BOS", v.bos));
  TANDEM_TRY(find_special(eos_text, "EOS", v.eos));
  v.bos_from_file = v.bos >= 0;
  if (v.add_bos && v.bos < 0)
    return make_error("{}: BOS is to be added but there is no bos_token", config_json.empty() ? tp : opt.config_path);
  if (v.add_eos && v.eos < 0)
    return make_error("{}: EOS is to be added but there is no eos_token", config_json.empty() ? tp : opt.config_path);
  return out;
}

}  // namespace

Result<HfTokenizer> import_hf_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                        const HfImportOptions& opt) {
  try {
    return import_impl(tokenizer_json, config_json, opt);
  } catch (const json::exception& e) {
    // A field of an unexpected JSON type somewhere the checks above do not look (e.g. a numeric
    // "special"): still an error, naming both files since either may hold it.
    return make_error("{}{}: a field has an unexpected type: {}", opt.tokenizer_path,
                      config_json.empty() ? std::string() : " / " + opt.config_path, e.what());
  }
}

GgufMetadata hf_tokenizer_metadata(const HfTokenizer& t) {
  GgufMetadata md = vocab_metadata(t.vocab);
  // No BOS (Qwen's bos_token is null): say so, rather than leave llama.cpp's default id 11 in force.
  if (t.vocab.bos < 0) md.emplace_back("tokenizer.ggml.bos_token_id", gguf_u32(0xFFFFFFFFu));
  if (!t.chat_template.empty()) md.emplace_back(kChatTemplateKey, gguf_str(t.chat_template));
  if (!t.named_templates.empty()) {
    std::vector<std::string> names;
    for (const auto& [name, text] : t.named_templates) {
      md.emplace_back(std::string(kChatTemplateKey) + "." + name, gguf_str(text));
      names.push_back(name);
    }
    md.emplace_back("tokenizer.chat_templates", gguf_str_array(names));
  }
  return md;
}

}  // namespace tandem
