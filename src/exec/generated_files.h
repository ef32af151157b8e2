#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace codecell::exec {

struct CollectedFile {
  std::string relative_path;  // below /mnt/data
  uint64_t size = 0;
  std::string host_path;  // the copy in the destination directory
};

struct SkippedFile {
  std::string relative_path;
  uint64_t size = 0;
  std::string reason;
};

struct CollectLimits {
  size_t max_files = 50;
  uint64_t max_file_bytes = 50ull << 20;
};

struct Collection {
  std::vector<CollectedFile> files;
  std::vector<SkippedFile> skipped;
  std::string error;  // set when the upper layer could not be read (for the log: names paths)
};

// Walks the overlay's upper layer (what the code created or modified under /mnt/data) without
// following any symlink, and copies regular files into `dest_dir` (same relative paths), in path
// order, within the limits. A file the code wrote or touched is generated whatever its bytes; one
// only copied up (opened for writing, chmod) with its input's bytes and mtime is not. Whiteouts
// (deletions) are ignored; symlinks and special files are listed as skipped, and so is a file
// that could not be copied out (a full disk), with a reason that names no host path.
Collection CollectGeneratedFiles(const std::string& upper, const std::string& lower,
                                 const std::string& dest_dir, const CollectLimits& limits);

}  // namespace codecell::exec
