#include "dist/shard_stream.h"

#include <fcntl.h>
#include <mpi.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "shard/format/mapped_file.h"
#include "shard/log.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Digest = std::array<unsigned char, 32>;

constexpr int kTagHeader = 7101, kTagRequest = 7102, kTagRanges = 7103, kTagData = 7104, kTagDigest = 7105;
constexpr uint64_t kChunk = 16u << 20;  // bytes per MPI message
constexpr uint64_t kMaxHeader = 1u << 30;

// What rank 0 says about its file: every rank compares its own against it.
struct FileInfo {
  uint64_t size = 0, header_len = 0;
  Digest digest{};
  int32_t ok = 0;  // 0: rank 0 cannot serve it (missing, not GGUF): nothing is streamed
};

enum Mode : uint64_t { kData = 1, kVerify = 2, kDone = 3, kAbort = 4 };

Digest sha256_of(const uint8_t* p, uint64_t n) {
  Digest d{};
  SHA256(p, n, d.data());
  return d;
}

Digest sha256_ranges(const uint8_t* base, const std::vector<ByteRange>& r) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (const auto& x : r) EVP_DigestUpdate(ctx, base + x.offset, x.length);
  Digest d{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, d.data(), &n);
  EVP_MD_CTX_free(ctx);
  return d;
}

std::string hex(const Digest& d, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", d[i]);
  return s;
}

// Whether `path` here is rank 0's file: the same size and the same header bytes.
bool same_file(const std::string& path, const FileInfo& info, std::string& why) {
  auto m = map_file(path);
  if (!m) {
    why = "not on this host";
    return false;
  }
  if ((*m)->size != info.size) {
    why = fmt::format("a different file here ({} bytes, rank 0's has {})", (*m)->size, info.size);
    return false;
  }
  if (sha256_of((*m)->data, info.header_len) != info.digest) {
    why = "a different file here (its header differs from rank 0's)";
    return false;
  }
  return true;
}

void send_ranges(const std::vector<ByteRange>& r, Mode mode) {
  uint64_t head[2] = {mode, r.size()};
  MPI_Send(head, 2, MPI_UINT64_T, 0, kTagRequest, MPI_COMM_WORLD);
  if (!r.empty()) MPI_Send(r.data(), static_cast<int>(r.size() * 2), MPI_UINT64_T, 0, kTagRanges, MPI_COMM_WORLD);
}

// Rank 0: answers one lacking rank until it says done (or has been sent its data).
void serve_rank(int peer, const std::string& path, const uint8_t* base, const FileInfo& info, const char* what) {
  for (uint64_t off = 0; off < info.header_len; off += kChunk)
    MPI_Send(base + off, static_cast<int>(std::min(kChunk, info.header_len - off)), MPI_BYTE, peer, kTagHeader,
             MPI_COMM_WORLD);
  while (true) {
    uint64_t head[2];
    MPI_Recv(head, 2, MPI_UINT64_T, peer, kTagRequest, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    std::vector<ByteRange> r(head[1]);
    if (head[1]) MPI_Recv(r.data(), static_cast<int>(head[1] * 2), MPI_UINT64_T, peer, kTagRanges, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    bool valid = true;
    for (const auto& x : r) valid = valid && x.offset <= info.size && x.length <= info.size - x.offset;
    if (head[0] == kVerify) {
      const Digest d = valid ? sha256_ranges(base, r) : Digest{};
      MPI_Send(d.data(), 32, MPI_BYTE, peer, kTagDigest, MPI_COMM_WORLD);
      continue;
    }
    if (head[0] != kData) return;  // done, or the peer gave up (it reports why itself)
    uint64_t total = 0;
    for (const auto& x : r) total += x.length;
    MPI_Send(&total, 1, MPI_UINT64_T, peer, kTagData, MPI_COMM_WORLD);
    if (!valid) return;  // total is sent anyway so the peer never waits; it sees no data follows
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& x : r)
      for (uint64_t off = 0; off < x.length; off += kChunk)
        MPI_Send(base + x.offset + off, static_cast<int>(std::min(kChunk, x.length - off)), MPI_BYTE, peer, kTagData,
                 MPI_COMM_WORLD);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("{} {}: streamed {:.1f} MiB to rank {} in {:.2f} s ({:.0f} MiB/s)", what, path, total / 1048576.0, peer,
                 s, total / 1048576.0 / std::max(s, 1e-9));
    return;
  }
}

Status write_all(int fd, const uint8_t* p, uint64_t n, uint64_t off) {
  while (n) {
    const ssize_t k = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (k <= 0) return make_error("cannot write the local copy: {}", std::strerror(errno));
    p += k;
    n -= static_cast<uint64_t>(k);
    off += static_cast<uint64_t>(k);
  }
  return ok_status();
}

std::vector<ByteRange> read_manifest(const std::string& path) {
  std::vector<ByteRange> r;
  std::ifstream f(path);
  uint64_t o, l;
  while (f >> o >> l) r.push_back({o, l});
  return r;
}

bool covers(const std::vector<ByteRange>& have, const std::vector<ByteRange>& need) {
  for (const auto& n : need) {
    bool ok = false;
    for (const auto& h : have) ok = ok || (h.offset <= n.offset && n.offset + n.length <= h.offset + h.length);
    if (!ok) return false;
  }
  return true;
}

// A lacking rank: header first, then (cache permitting) a digest check, else its bytes.
Result<LocalModel> fetch(const std::string& path, const FileInfo& info,
                         const std::function<Result<std::vector<ByteRange>>(const ModelFile&)>& needs,
                         const std::string& cache_dir, int rank, const char* what) {
  std::vector<uint8_t> header(info.header_len);
  for (uint64_t off = 0; off < info.header_len; off += kChunk)
    MPI_Recv(header.data() + off, static_cast<int>(std::min(kChunk, info.header_len - off)), MPI_BYTE, 0, kTagHeader,
             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  LocalModel out;
  std::string stem = fs::path(path).stem().string();
  const std::string name = fmt::format("{}-{}-{}.r{}.gguf", stem, info.size, hex(info.digest, 6), rank);
  if (!cache_dir.empty()) {
    std::error_code ec;
    fs::create_directories(cache_dir, ec);
    out.path = (fs::path(cache_dir) / name).string();
  } else {
    out.path = (fs::temp_directory_path() / fmt::format("tandem-{}-{}", ::getpid(), name)).string();
    out.temporary = true;
  }
  const std::string manifest = out.path + ".ranges";
  auto give_up = [&](const Error& e) -> Result<LocalModel> {
    send_ranges({}, kAbort);
    return make_error("{} {}: cannot receive it from rank 0: {}", what, path, e.message);
  };

  // A cached copy: use it when it covers this rank's bytes and they hash as rank 0's do.
  if (!cache_dir.empty() && fs::exists(out.path) && fs::exists(manifest)) {
    std::string why;
    if (same_file(out.path, info, why)) {
      auto f = open_model(out.path);
      auto r = f ? needs(*f) : Result<std::vector<ByteRange>>(f.error());
      if (r && covers(read_manifest(manifest), *r)) {
        send_ranges(*r, kVerify);
        Digest theirs{};
        MPI_Recv(theirs.data(), 32, MPI_BYTE, 0, kTagDigest, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (sha256_ranges(f->map->data, *r) == theirs) {
          send_ranges({}, kDone);
          spdlog::info("{} {}: not on this host; using the cached shard {} (its bytes match rank 0's)", what, path, out.path);
          return out;
        }
        spdlog::warn("{} {}: the cached shard {} differs from rank 0's file; fetching it again", what, path, out.path);
      }
    }
  }

  // A sparse file of the full size holding the header; opened, it says which bytes to ask for.
  const int fd = ::open(out.path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return give_up(make_error("cannot create {}: {}", out.path, std::strerror(errno)));
  std::error_code ec;
  fs::remove(manifest, ec);
  auto fail_fd = [&](const Error& e) {
    ::close(fd);
    return give_up(e);
  };
  if (::ftruncate(fd, static_cast<off_t>(info.size)) != 0)
    return fail_fd(make_error("cannot size {}: {}", out.path, std::strerror(errno)));
  if (auto st = write_all(fd, header.data(), header.size(), 0); !st) return fail_fd(st.error());
  auto f = open_model(out.path);
  if (!f) return fail_fd(f.error());
  auto r = needs(*f);
  if (!r) return fail_fd(r.error());
  std::vector<ByteRange> ranges;
  for (const auto& x : *r)  // the header is here already
    if (x.offset + x.length > info.header_len) ranges.push_back(x);
  send_ranges(ranges, kData);
  uint64_t total = 0;
  MPI_Recv(&total, 1, MPI_UINT64_T, 0, kTagData, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  uint64_t want = 0;
  for (const auto& x : ranges) want += x.length;
  if (total != want) {
    ::close(fd);
    return make_error("{} {}: rank 0 refused the byte ranges asked for (they lie outside its file)", what, path);
  }
  std::vector<uint8_t> buf(kChunk);
  uint64_t got = 0, next_log = want / 10;
  Status written = ok_status();  // after a write error the rest is still received: rank 0 is sending it
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& x : ranges)
    for (uint64_t off = 0; off < x.length; off += kChunk) {
      const uint64_t n = std::min(kChunk, x.length - off);
      MPI_Recv(buf.data(), static_cast<int>(n), MPI_BYTE, 0, kTagData, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (written) written = write_all(fd, buf.data(), n, x.offset + off);
      got += n;
      if (want > (64u << 20) && got >= next_log && got < want) {
        spdlog::info("{} {}: received {:.0f}% ({:.1f} of {:.1f} MiB)", what, path, 100.0 * got / want, got / 1048576.0,
                     want / 1048576.0);
        next_log += want / 10;
      }
    }
  ::fsync(fd);
  ::close(fd);
  if (!written) return make_error("{} {}: {}", what, path, written.error().message);
  {
    std::ofstream m(manifest);
    m << 0 << " " << info.header_len << "\n";
    for (const auto& x : ranges) m << x.offset << " " << x.length << "\n";
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.bytes_received = got + info.header_len;
  spdlog::info("{} {}: not on this host; received {:.1f} MiB from rank 0 in {:.2f} s ({} header bytes + {} shard bytes) "
               "into {}{}", what, path, out.bytes_received / 1048576.0, s, info.header_len, got, out.path,
               out.temporary ? " (removed once mapped)" : "");
  return out;
}

}  // namespace

Result<LocalModel> ensure_local_model(const std::string& path, bool wants,
                                      const std::function<Result<std::vector<ByteRange>>(const ModelFile&)>& needs,
                                      const std::string& cache_dir, const char* what) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  LocalModel local{path};
  if (size == 1) return local;

  FileInfo info;
  std::shared_ptr<const MappedFile> map;
  if (rank == 0) {  // the header only: rank 0 opens the model itself later, as every rank does
    auto g = open_gguf(path);
    if (g && g->data_offset <= kMaxHeader) {
      map = g->map;
      info.size = map->size;
      info.header_len = g->data_offset;
      info.digest = sha256_of(map->data, info.header_len);
      info.ok = 1;
    }
  }
  MPI_Bcast(&info, sizeof info, MPI_BYTE, 0, MPI_COMM_WORLD);
  int have = 1;
  std::string why;
  if (rank != 0 && wants && info.ok && !same_file(path, info, why)) have = 0;
  std::vector<int> haves(size);
  MPI_Allgather(&have, 1, MPI_INT, haves.data(), 1, MPI_INT, MPI_COMM_WORLD);
  if (std::all_of(haves.begin(), haves.end(), [](int h) { return h; })) return local;

  if (rank == 0) {
    for (int r = 1; r < size; ++r)
      if (!haves[r]) serve_rank(r, path, map->data, info, what);
    return local;
  }
  if (have) return local;
  spdlog::info("{} {}: {}; asking rank 0 for this rank's shard", what, path, why);
  return fetch(path, info, needs, cache_dir, rank, what);
}

}  // namespace tandem
