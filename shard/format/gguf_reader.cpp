#include "shard/format/gguf_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_set>

namespace tandem {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
// Bounds on counts: far above any real model, low enough that a corrupted count is rejected
// before it drives an allocation.
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxKv = 1u << 20;
constexpr uint64_t kMaxDims = 4;
constexpr uint64_t kMaxArrayNesting = 2;
// Real vocabularies and merge lists hold well under a million entries.
constexpr uint64_t kMaxArrayItems = uint64_t{1} << 24;
// Smallest encodings: a key/value is a key length (8), a type (4) and at least one value byte; a
// tensor info is a name length (8), n_dims (4), one dimension (8), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 32;

struct Cursor {
  const uint8_t* base;
  size_t size;
  size_t pos = 0;
  std::string error;

  bool need(size_t n, const char* what) {
    if (!error.empty()) return false;
    if (n > size - pos) {
      error = fmt::format("truncated: {} needs {} bytes at offset {}, file has {}", what, n, pos, size);
      return false;
    }
    return true;
  }
  template <class T>
  bool read(T& out, const char* what) {
    if (!need(sizeof(T), what)) return false;
    std::memcpy(&out, base + pos, sizeof(T));
    pos += sizeof(T);
    return true;
  }
  bool read_string(std::string& out, const char* what) {
    uint64_t len = 0;
    if (!read(len, what)) return false;
    if (!need(len, what)) return false;
    out.assign(reinterpret_cast<const char*>(base + pos), len);
    pos += len;
    return true;
  }
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool read_value(Cursor& c, GgufType type, GgufValue& out, int depth) {
  out.type = type;
  switch (type) {
    case GgufType::U8: { uint8_t x; if (!c.read(x, "u8 value")) return false; out.v = uint64_t{x}; return true; }
    case GgufType::I8: { int8_t x; if (!c.read(x, "i8 value")) return false; out.v = int64_t{x}; return true; }
    case GgufType::U16: { uint16_t x; if (!c.read(x, "u16 value")) return false; out.v = uint64_t{x}; return true; }
    case GgufType::I16: { int16_t x; if (!c.read(x, "i16 value")) return false; out.v = int64_t{x}; return true; }
    case GgufType::U32: { uint32_t x; if (!c.read(x, "u32 value")) return false; out.v = uint64_t{x}; return true; }
    case GgufType::I32: { int32_t x; if (!c.read(x, "i32 value")) return false; out.v = int64_t{x}; return true; }
    case GgufType::U64: { uint64_t x; if (!c.read(x, "u64 value")) return false; out.v = x; return true; }
    case GgufType::I64: { int64_t x; if (!c.read(x, "i64 value")) return false; out.v = x; return true; }
    case GgufType::F32: { float x; if (!c.read(x, "f32 value")) return false; out.v = double{x}; return true; }
    case GgufType::F64: { double x; if (!c.read(x, "f64 value")) return false; out.v = x; return true; }
    case GgufType::BOOL: {
      uint8_t x;
      if (!c.read(x, "bool value")) return false;
      if (x > 1) { c.error = fmt::format("invalid bool value {} at offset {}", x, c.pos - 1); return false; }
      out.v = x != 0;
      return true;
    }
    case GgufType::STRING: { std::string s; if (!c.read_string(s, "string value")) return false; out.v = std::move(s); return true; }
    case GgufType::ARRAY: {
      if (depth >= static_cast<int>(kMaxArrayNesting)) { c.error = "arrays nested too deeply"; return false; }
      uint32_t et = 0;
      uint64_t n = 0;
      if (!c.read(et, "array element type") || !c.read(n, "array length")) return false;
      if (et > static_cast<uint32_t>(GgufType::F64)) { c.error = fmt::format("unknown array element type {}", et); return false; }
      GgufArray arr;
      arr.elem = static_cast<GgufType>(et);
      // Every element takes at least one byte (strings: 8), so a count larger than the rest of
      // the file is corruption; reject it before reserving memory for it.
      const size_t min_elem = arr.elem == GgufType::STRING ? 8 : (arr.elem == GgufType::ARRAY ? 12 : scalar_size(arr.elem));
      if (n > (c.size - c.pos) / min_elem) {
        c.error = fmt::format("array of {} elements at offset {} runs past the end of the file", n, c.pos);
        return false;
      }
      if (n > kMaxArrayItems) {
        c.error = fmt::format("array of {} elements at offset {} is implausibly long", n, c.pos);
        return false;
      }
      // Grown as elements actually parse (not resized to the claimed count): memory follows
      // the bytes really present, each element taking ~50 bytes however small it is on disk.
      arr.items.reserve(std::min<uint64_t>(n, 4096));
      for (uint64_t i = 0; i < n; ++i) {
        arr.items.emplace_back();
        if (!read_value(c, arr.elem, arr.items.back(), depth + 1)) return false;
      }
      out.v = std::move(arr);
      return true;
    }
  }
  c.error = fmt::format("unknown metadata value type {}", static_cast<uint32_t>(type));
  return false;
}

// A binary file pushed through a text pipeline has its invalid UTF-8 bytes replaced by U+FFFD
// (EF BF BD); saying so turns a baffling parse error into an actionable one.
std::string lossy_utf8_hint(const MappedFile& m) {
  const size_t n = std::min<size_t>(m.size, 1 << 20);
  size_t hits = 0;
  for (size_t i = 0; i + 2 < n; ++i)
    if (m.data[i] == 0xEF && m.data[i + 1] == 0xBF && m.data[i + 2] == 0xBD) ++hits;
  return hits >= 8 ? " (the file contains many U+FFFD sequences: it looks like it went through a lossy UTF-8 "
                     "text conversion; copy it as binary)"
                   : "";
}

}  // namespace

std::optional<int64_t> GgufValue::as_int() const {
  if (auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (auto* i = std::get_if<int64_t>(&v)) return *i;
  if (auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto i = as_int()) return static_cast<double>(*i);
  return std::nullopt;
}

const std::string* GgufValue::as_string() const { return std::get_if<std::string>(&v); }
const GgufArray* GgufValue::as_array() const { return std::get_if<GgufArray>(&v); }

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata)
    if (k == key) return &v;
  return nullptr;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const auto* v = find(key);
  return v ? v->as_int() : std::nullopt;
}
std::optional<double> GgufFile::get_float(const std::string& key) const {
  const auto* v = find(key);
  return v ? v->as_float() : std::nullopt;
}
std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const auto* v = find(key);
  if (!v || !v->as_string()) return std::nullopt;
  return *v->as_string();
}
std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (auto* b = std::get_if<bool>(&v->v)) return *b;
  if (auto i = v->as_int()) return *i != 0;
  return std::nullopt;
}
std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  std::vector<std::string> out;
  const auto* v = find(key);
  if (!v || !v->as_array()) return out;
  out.reserve(v->as_array()->items.size());
  for (const auto& it : v->as_array()->items)
    if (auto* s = it.as_string()) out.push_back(*s);
    else return {};
  return out;
}
std::vector<float> GgufFile::get_floats(const std::string& key) const {
  std::vector<float> out;
  const auto* v = find(key);
  if (!v || !v->as_array()) return out;
  out.reserve(v->as_array()->items.size());
  for (const auto& it : v->as_array()->items)
    if (auto f = it.as_float()) out.push_back(static_cast<float>(*f));
    else return {};
  return out;
}
std::vector<int32_t> GgufFile::get_ints(const std::string& key) const {
  std::vector<int32_t> out;
  const auto* v = find(key);
  if (!v || !v->as_array()) return out;
  out.reserve(v->as_array()->items.size());
  for (const auto& it : v->as_array()->items)
    if (auto i = it.as_int()) out.push_back(static_cast<int32_t>(*i));
    else return {};
  return out;
}

Result<GgufFile> parse_gguf(std::shared_ptr<const MappedFile> map) {
  GgufFile f;
  f.path = map->path;
  Cursor c{map->data, map->size, 0, {}};
  auto fail = [&](const std::string& what) {
    return make_error("{}: not a valid GGUF file: {}{}", f.path, what, lossy_utf8_hint(*map));
  };

  uint32_t magic = 0;
  if (!c.read(magic, "magic")) return fail(c.error);
  if (magic != kMagic) return fail(fmt::format("bad magic 0x{:08x} (expected \"GGUF\")", magic));
  if (!c.read(f.version, "version")) return fail(c.error);
  if (f.version != 2 && f.version != 3)
    return fail(fmt::format("unsupported GGUF version {} (tandem reads versions 2 and 3)", f.version));
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.read(n_tensors, "tensor count") || !c.read(n_kv, "metadata count")) return fail(c.error);
  // Checked against the bytes left before anything is reserved for them.
  const uint64_t rest = c.size - c.pos;
  if (n_tensors > kMaxTensors || n_tensors > rest / kMinTensorInfoBytes)
    return fail(fmt::format("tensor count {} is implausible for a file of {} bytes", n_tensors, c.size));
  if (n_kv > kMaxKv || n_kv > rest / kMinKvBytes)
    return fail(fmt::format("metadata count {} is implausible for a file of {} bytes", n_kv, c.size));

  f.metadata.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type = 0;
    if (!c.read_string(key, "metadata key") || !c.read(type, "metadata type")) return fail(c.error);
    if (type > static_cast<uint32_t>(GgufType::F64))
      return fail(fmt::format("metadata '{}' has unknown value type {}", key, type));
    GgufValue v;
    if (!read_value(c, static_cast<GgufType>(type), v, 0)) return fail(fmt::format("metadata '{}': {}", key, c.error));
    f.metadata.emplace_back(std::move(key), std::move(v));
  }

  if (const auto* a = f.find("general.alignment")) {
    auto al = a->as_int();
    if (!al || *al <= 0 || (*al & (*al - 1)) != 0 || *al > (1 << 20))
      return fail("general.alignment must be a power of two");
    f.alignment = static_cast<uint64_t>(*al);
  }

  f.tensors.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    uint32_t n_dims = 0, type = 0;
    if (!c.read_string(t.name, "tensor name") || !c.read(n_dims, "tensor dimension count")) return fail(c.error);
    if (n_dims == 0 || n_dims > kMaxDims) return fail(fmt::format("tensor '{}' has {} dimensions", t.name, n_dims));
    t.ne.resize(n_dims);
    int64_t elems = 1;
    for (auto& d : t.ne) {
      uint64_t x = 0;
      if (!c.read(x, "tensor dimension")) return fail(c.error);
      if (x == 0 || x > (uint64_t{1} << 40)) return fail(fmt::format("tensor '{}' has dimension {}", t.name, x));
      d = static_cast<int64_t>(x);
      if (__builtin_mul_overflow(elems, d, &elems) || elems > (int64_t{1} << 42))
        return fail(fmt::format("tensor '{}' has too many elements", t.name));
    }
    if (!c.read(type, "tensor type") || !c.read(t.offset, "tensor offset")) return fail(c.error);
    auto ti = weight_type_info(type);
    if (!ti) return fail(fmt::format("tensor '{}' has unsupported weight type {}", t.name, type));
    t.type = static_cast<WeightType>(type);
    if (t.ne[0] % ti->block_elems != 0)
      return fail(fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}", t.name,
                              t.ne[0], ti->name, ti->block_elems));
    t.nbytes = static_cast<uint64_t>(elems / ti->block_elems) * ti->block_bytes;
    if (t.offset % f.alignment != 0)
      return fail(fmt::format("tensor '{}' offset {} is not aligned to {}", t.name, t.offset, f.alignment));
    f.tensors.push_back(std::move(t));
  }

  f.data_offset = (c.pos + f.alignment - 1) / f.alignment * f.alignment;
  if (f.data_offset > map->size && n_tensors > 0) return fail("data section starts past the end of the file");
  const uint64_t data_size = map->size >= f.data_offset ? map->size - f.data_offset : 0;
  for (const auto& t : f.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return make_error("{}: tensor '{}' ({} bytes at data offset {}) extends past the end of the file ({} bytes)",
                        f.path, t.name, t.nbytes, t.offset, map->size);
  }
  std::unordered_set<std::string_view> names;
  for (const auto& t : f.tensors)
    if (!names.insert(t.name).second) return fail(fmt::format("duplicate tensor '{}'", t.name));
  f.map = std::move(map);
  return f;
}

Result<GgufFile> open_gguf(const std::string& path) {
  auto m = map_file(path);
  if (!m) return m.error();
  return parse_gguf(std::move(*m));
}

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::U8: return "u8";
    case GgufType::I8: return "i8";
    case GgufType::U16: return "u16";
    case GgufType::I16: return "i16";
    case GgufType::U32: return "u32";
    case GgufType::I32: return "i32";
    case GgufType::F32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "u64";
    case GgufType::I64: return "i64";
    case GgufType::F64: return "f64";
  }
  return "?";
}

std::string format_value(const GgufValue& v, size_t max_items) {
  if (auto* a = v.as_array()) {
    std::string s = fmt::format("[{}; {}] [", gguf_type_name(a->elem), a->items.size());
    for (size_t i = 0; i < a->items.size() && i < max_items; ++i) {
      if (i) s += ", ";
      s += format_value(a->items[i], max_items);
    }
    if (a->items.size() > max_items) s += ", ...";
    return s + "]";
  }
  if (auto* str = v.as_string()) {
    std::string s = str->size() > 60 ? str->substr(0, 60) + "..." : *str;
    return fmt::format("\"{}\"", s);
  }
  if (auto* b = std::get_if<bool>(&v.v)) return *b ? "true" : "false";
  if (auto* d = std::get_if<double>(&v.v)) return fmt::format("{}", *d);
  if (auto* u = std::get_if<uint64_t>(&v.v)) return fmt::format("{}", *u);
  if (auto* i = std::get_if<int64_t>(&v.v)) return fmt::format("{}", *i);
  return "?";
}

}  // namespace tandem
