// Small POSIX file and process helpers shared by the checkpoint code and the programs' outputs.
#pragma once

#include <sys/types.h>

#include <string>

namespace tapegrad {

// Writes all of `text` to `path` (created or truncated, mode 0644), retrying short and interrupted
// writes. Returns 0, or the errno of the first failure (ENOSPC, EFBIG, ...), the file then partial.
int write_file(const std::string& path, const std::string& text);

// No such process, or a zombie (dead, waiting to be reaped by a parent that may never do it).
bool process_is_gone(pid_t pid);

}  // namespace tapegrad
