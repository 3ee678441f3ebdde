#include "shard/format/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

namespace tandem {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

// Little-endian serialisation to the (buffered) file, tracking the offset for alignment padding.
struct Sink {
  std::FILE* f;
  uint64_t pos = 0;
  bool ok = true;

  void bytes(const void* p, size_t n) {
    if (!ok || n == 0) return;
    if (std::fwrite(p, 1, n, f) != n) ok = false;
    pos += n;
  }
  template <class T>
  void pod(T v) {
    bytes(&v, sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t zeros[64] = {};
    uint64_t n = (alignment - pos % alignment) % alignment;
    while (n > 0) {
      const uint64_t k = std::min<uint64_t>(n, sizeof(zeros));
      bytes(zeros, k);
      n -= k;
    }
  }
};

// The value of `v` as the on-disk type `type`, or an error naming what does not fit.
Status write_value(Sink& s, GgufType type, const GgufValue& v, const std::string& key) {
  auto as_u = [&](uint64_t& out) -> bool {
    if (auto* u = std::get_if<uint64_t>(&v.v)) { out = *u; return true; }
    if (auto* i = std::get_if<int64_t>(&v.v)) { out = static_cast<uint64_t>(*i); return true; }
    if (auto* b = std::get_if<bool>(&v.v)) { out = *b; return true; }
    return false;
  };
  auto mismatch = [&] {
    return make_error("GGUF metadata '{}': value does not match its type {}", key, gguf_type_name(type));
  };
  uint64_t u = 0;
  switch (type) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL:
      if (!as_u(u)) return mismatch();
      s.pod(static_cast<uint8_t>(u));
      return ok_status();
    case GgufType::U16: case GgufType::I16:
      if (!as_u(u)) return mismatch();
      s.pod(static_cast<uint16_t>(u));
      return ok_status();
    case GgufType::U32: case GgufType::I32:
      if (!as_u(u)) return mismatch();
      s.pod(static_cast<uint32_t>(u));
      return ok_status();
    case GgufType::U64: case GgufType::I64:
      if (!as_u(u)) return mismatch();
      s.pod(u);
      return ok_status();
    case GgufType::F32: case GgufType::F64: {
      auto d = v.as_float();
      if (!d) return mismatch();
      if (type == GgufType::F32) s.pod(static_cast<float>(*d));
      else s.pod(*d);
      return ok_status();
    }
    case GgufType::STRING: {
      const auto* str = v.as_string();
      if (!str) return mismatch();
      s.str(*str);
      return ok_status();
    }
    case GgufType::ARRAY: {
      const auto* a = v.as_array();
      if (!a) return mismatch();
      s.pod(static_cast<uint32_t>(a->elem));
      s.pod<uint64_t>(a->items.size());
      for (const auto& item : a->items) TANDEM_TRY(write_value(s, a->elem, item, key));
      return ok_status();
    }
  }
  return make_error("GGUF metadata '{}': unknown value type {}", key, static_cast<uint32_t>(type));
}

}  // namespace

GgufValue gguf_u32(uint32_t v) { return GgufValue{GgufType::U32, uint64_t{v}}; }
GgufValue gguf_i32(int32_t v) { return GgufValue{GgufType::I32, int64_t{v}}; }
GgufValue gguf_f32(float v) { return GgufValue{GgufType::F32, double{v}}; }
GgufValue gguf_bool(bool v) { return GgufValue{GgufType::BOOL, v}; }
GgufValue gguf_str(std::string v) { return GgufValue{GgufType::STRING, std::move(v)}; }

GgufValue gguf_str_array(std::vector<std::string> v) {
  GgufArray a{GgufType::STRING, {}};
  a.items.reserve(v.size());
  for (auto& s : v) a.items.push_back(gguf_str(std::move(s)));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}
GgufValue gguf_f32_array(const std::vector<float>& v) {
  GgufArray a{GgufType::F32, {}};
  a.items.reserve(v.size());
  for (float x : v) a.items.push_back(gguf_f32(x));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}
GgufValue gguf_i32_array(const std::vector<int32_t>& v) {
  GgufArray a{GgufType::I32, {}};
  a.items.reserve(v.size());
  for (int32_t x : v) a.items.push_back(gguf_i32(x));
  return GgufValue{GgufType::ARRAY, std::move(a)};
}

Status write_gguf(const std::string& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                  const std::vector<TensorToWrite>& tensors) {
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [k, v] : metadata) {
    if (k != "general.alignment") continue;
    auto al = v.as_int();
    if (!al || *al <= 0 || (*al & (*al - 1)) != 0)
      return make_error("{}: general.alignment must be a power of two", path);
    alignment = static_cast<uint64_t>(*al);
  }

  // Shapes first, so a bad tensor list fails before a partial file exists.
  std::vector<uint64_t> sizes, offsets;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) return make_error("{}: duplicate tensor '{}'", path, t.name);
    if (t.ne.empty() || t.ne.size() > 4) return make_error("{}: tensor '{}' has {} dimensions", path, t.name, t.ne.size());
    int64_t rows = 1;
    for (size_t d = 0; d < t.ne.size(); ++d) {
      if (t.ne[d] <= 0) return make_error("{}: tensor '{}' has dimension {}", path, t.name, t.ne[d]);
      if (d > 0) rows *= t.ne[d];
    }
    const auto& ti = info(t.type);
    if (t.ne[0] % ti.block_elems != 0)
      return make_error("{}: tensor '{}': row length {} is not a multiple of the {} block size {}", path, t.name,
                        t.ne[0], ti.name, ti.block_elems);
    if (!t.fill) return make_error("{}: tensor '{}' has no data source", path, t.name);
    offset = (offset + alignment - 1) / alignment * alignment;
    offsets.push_back(offset);
    sizes.push_back(row_bytes(t.type, t.ne[0]) * static_cast<uint64_t>(rows));
    offset += sizes.back();
  }

  // Written beside the target and renamed at the end, so a failed run never leaves a file that
  // looks complete.
  const std::string tmp = path + ".partial";
  std::vector<char> iobuf(1 << 20);  // declared before the FILE: it must outlive fclose
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f) return make_error("{}: cannot create: {}", tmp, std::strerror(errno));
  std::setvbuf(f.get(), iobuf.data(), _IOFBF, iobuf.size());
  auto io_error = [&](int err) {
    f.reset();
    std::remove(tmp.c_str());
    return make_error("{}: write failed: {}", tmp, std::strerror(err));
  };

  Sink s{f.get()};
  s.pod(kMagic);
  s.pod(kVersion);
  s.pod<uint64_t>(tensors.size());
  s.pod<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    s.str(key);
    s.pod(static_cast<uint32_t>(value.type));
    auto st = write_value(s, value.type, value, key);
    if (!st) {
      f.reset();
      std::remove(tmp.c_str());
      return make_error("{}: {}", path, st.error().message);
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    s.str(t.name);
    s.pod(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) s.pod(static_cast<uint64_t>(d));
    s.pod(static_cast<uint32_t>(t.type));
    s.pod(offsets[i]);
  }
  s.pad_to(alignment);
  if (!s.ok) return io_error(errno);

  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    s.pad_to(alignment);
    buf.assign(sizes[i], 0);
    tensors[i].fill(buf.data());
    s.bytes(buf.data(), buf.size());
    if (!s.ok) return io_error(errno);
  }
  if (std::fflush(f.get()) != 0 || !s.ok) return io_error(errno);
  if (std::fclose(f.release()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error("{}: write failed: {}", tmp, std::strerror(e));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    return make_error("{}: cannot rename {} into place: {}", path, tmp, std::strerror(e));
  }
  return ok_status();
}

}  // namespace tandem
