// A read-only memory map of a whole file. Pages are touched only when read, so a rank that
// reads only its shard of a model pulls only that shard from disk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "shard/result.h"

namespace tandem {

struct MappedFile {
  std::string path;
  const uint8_t* data = nullptr;
  size_t size = 0;
  ~MappedFile();
};

Result<std::shared_ptr<const MappedFile>> map_file(const std::string& path);

}  // namespace tandem
