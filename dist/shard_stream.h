// Hosts without the model file: a rank whose host lacks the file named on the command line (or
// holds a different one: another size, or another header digest) receives from rank 0 the bytes
// its shard reads — the GGUF header, its rows and columns of its layers' matrices, norms, biases,
// and the token embedding when it embeds — in chunks over MPI, into a sparse local copy of the
// file (holes elsewhere), which it then opens like the original. With a cache directory the copy
// is kept (`DIR/<name>-<size>-<digest>.r<rank>.gguf` and a `.ranges` list); the next start checks
// its bytes against rank 0's by SHA-256 before using it, and fetches again when they differ.
//
// Collective over MPI_COMM_WORLD: every rank calls it with the same file, in the same order.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "shard/format/model_file.h"
#include "shard/model/shard_model.h"

namespace tandem {

struct LocalModel {
  std::string path;        // what this rank opens
  bool temporary = false;  // a copy to delete once opened (no cache directory)
  uint64_t bytes_received = 0;
};

// `wants`: whether this rank opens the file at all. `needs`: the byte ranges this rank reads,
// asked of a header-only copy (no weights yet). `what`: "model" / "draft" for the messages.
Result<LocalModel> ensure_local_model(const std::string& path, bool wants,
                                      const std::function<Result<std::vector<ByteRange>>(const ModelFile&)>& needs,
                                      const std::string& cache_dir, const char* what);

}  // namespace tandem
