#include "io/checkpoint.h"
#include "io/files.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <set>

namespace tapegrad {

namespace {

const std::string kMagic = "tapegrad-checkpoint";
const std::string kTrailerTag = "\nfnv1a64 ";
// The state prefixes of the optimizers tapegrad has (optim/optimizer.h): a record starting with
// one of them is optimizer state, not a parameter.
const char* const kOptimizerPrefixes[] = {"sgd.", "adam.", "adamw."};
constexpr std::size_t kMaxFileBytes = kMaxCheckpointFileBytes;

// The prefix of the optimizer whose state record `tensor` is, or "" for a parameter.
std::string optimizer_prefix_of(const std::string& tensor) {
  for (const char* prefix : kOptimizerPrefixes)
    if (tensor.rfind(prefix, 0) == 0) return prefix;
  return "";
}

std::uint64_t fnv1a64(const char* data, std::size_t n) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

template <class T>
const char* dtype_name() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

// A CheckpointError "checkpoint NAME: why".
CheckpointError failure(const std::string& name, const std::string& why) {
  return CheckpointError("checkpoint " + name + ": " + why);
}

// errno in words; for EFBIG also the file size limit that caused it.
std::string io_reason(int err) {
  std::string why = std::strerror(err);
  rlimit limit{};
  if (err == EFBIG && ::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    why += " (the file size limit, ulimit -f, is " + std::to_string(limit.rlim_cur) + " bytes)";
  return why;
}

// write(2) until done; throws CheckpointWriteError naming `file` on error.
void write_all(int fd, const std::string& bytes, const std::string& path, const std::string& file) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw CheckpointWriteError("checkpoint " + path + ": cannot write " + file + ": " +
                                 io_reason(errno));
    }
    off += static_cast<std::size_t>(w);
  }
}

// "<name>.tmp." with <name> cut so that the prefix and a pid fit in NAME_MAX bytes.
std::string temporary_prefix(const std::filesystem::path& target) {
  const std::string name = target.filename().string();
  const std::size_t room = NAME_MAX - std::string(".tmp.").size() - 10;  // 10: the longest pid
  return name.substr(0, std::min(name.size(), room)) + ".tmp.";
}

template <class T>
void append_raw(std::string& out, const xt::xarray<T>& a) {
  // The machines we target are little-endian; the format says little-endian so a big-endian port
  // knows to swap.
  out.append(reinterpret_cast<const char*>(a.data()), a.size() * sizeof(T));
}

// The whole file: magic line, header length line, header, payload, trailer.
template <class T>
std::string serialize(const NamedTensors<T>& params, Optimizer<T>& optimizer,
                      const nlohmann::json& meta) {
  nlohmann::json header;
  header["dtype"] = dtype_name<T>();
  header["tensors"] = nlohmann::json::array();
  header["meta"] = meta;
  std::string payload;
  for (const auto& [name, t] : params) {
    header["tensors"].push_back({{"name", name}, {"shape", t.shape()}});
    append_raw(payload, t.value());
  }
  for (const auto& [name, buffer] : optimizer.state()) {
    header["tensors"].push_back({{"name", name}, {"shape", to_shape(buffer.shape())}});
    append_raw(payload, buffer);
  }
  const std::string header_text = header.dump();
  std::string bytes = kMagic + " " + std::to_string(kCheckpointVersion) + "\n" +
                      std::to_string(header_text.size()) + "\n" + header_text + payload;
  return bytes + kTrailerTag + hex16(fnv1a64(bytes.data(), bytes.size())) + "\n";
}

// Removes "<path>.tmp.<pid>" files left by saves whose process was killed (pid no longer exists).
void remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  const std::string prefix = temporary_prefix(target);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
        name.size() > prefix.size() + 9)
      continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (process_is_gone(pid)) std::filesystem::remove(entry.path(), ec);
  }
}

void fsync_directory_of(const std::string& path) {
  const std::filesystem::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string checkpoint_target(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  for (int links = 0; links < 40 && std::filesystem::is_symlink(p, ec); ++links) {
    const std::filesystem::path to = std::filesystem::read_symlink(p, ec);
    if (ec) break;
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  return p.lexically_normal().string();
}

template <class T>
std::string stage_checkpoint(const std::string& path, const NamedTensors<T>& params,
                             Optimizer<T>& optimizer, const nlohmann::json& meta) {
  for (const auto& param : params)  // loading would take it for optimizer state
    if (!optimizer_prefix_of(param.first).empty())
      throw failure(path, "parameter name '" + param.first + "' starts with an optimizer's prefix");
  const std::string bytes = serialize(params, optimizer, meta);
  const std::string target = checkpoint_target(path);
  remove_stale_temporaries(target);
  const std::filesystem::path target_path(target);
  const std::string tmp =
      (target_path.parent_path() / (temporary_prefix(target_path) + std::to_string(::getpid())))
          .string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw CheckpointWriteError("checkpoint " + path + ": cannot create " + tmp + ": " +
                               io_reason(errno));
  try {
    write_all(fd, bytes, path, tmp);
    if (::fsync(fd) != 0)
      throw CheckpointWriteError("checkpoint " + path + ": cannot write " + tmp + ": " +
                                 io_reason(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw CheckpointWriteError("checkpoint " + path + ": cannot write " + tmp + ": " +
                               io_reason(err));
  }
  return tmp;
}

template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params,
                     Optimizer<T>& optimizer, const nlohmann::json& meta) {
  const std::string tmp = stage_checkpoint(path, params, optimizer, meta);
  const std::string target = checkpoint_target(path);
  if (std::rename(tmp.c_str(), target.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw CheckpointWriteError("checkpoint " + path + ": cannot rename " + tmp +
                               " onto it: " + err);
  }
  fsync_directory_of(target);  // make the rename itself durable
}

namespace {

// Checks magic, version, trailer and hash; returns the header's JSON text and the offsets of the
// payload [payload_begin, payload_end).
struct Framing {
  std::string header_text;
  std::size_t payload_begin = 0, payload_end = 0;
};

Framing check_framing(const std::string& bytes, const std::string& name) {
  const auto nl1 = bytes.find('\n');
  if (nl1 == std::string::npos || bytes.compare(0, kMagic.size() + 1, kMagic + " ") != 0)
    throw failure(name, "not a tapegrad checkpoint (bad magic)");
  const std::string version = bytes.substr(kMagic.size() + 1, nl1 - kMagic.size() - 1);
  if (version != std::to_string(kCheckpointVersion))
    throw failure(name, "unsupported format version '" + version.substr(0, 20) +
                            "' (this build reads version " + std::to_string(kCheckpointVersion) +
                            ")");
  const std::size_t trailer_len = kTrailerTag.size() + 16 + 1;
  if (bytes.size() < nl1 + 1 + trailer_len) throw failure(name, "truncated");
  const std::size_t body = bytes.size() - trailer_len;
  if (bytes.compare(body, kTrailerTag.size(), kTrailerTag) != 0 || bytes.back() != '\n')
    throw failure(name, "truncated (no checksum trailer)");
  if (bytes.substr(body + kTrailerTag.size(), 16) != hex16(fnv1a64(bytes.data(), body)))
    throw failure(name, "checksum mismatch (corrupted)");
  const auto nl2 = bytes.find('\n', nl1 + 1);
  const std::string length_line =
      nl2 == std::string::npos ? "" : bytes.substr(nl1 + 1, nl2 - nl1 - 1);
  if (nl2 >= body || length_line.empty() || length_line.size() > 12 ||
      length_line.find_first_not_of("0123456789") != std::string::npos)
    throw failure(name, "bad header length line");
  const std::size_t header_len = std::stoull(length_line);
  if (header_len > body - nl2 - 1) throw failure(name, "header longer than the file");
  return {bytes.substr(nl2 + 1, header_len), nl2 + 1 + header_len, body};
}

// The header's fields have the types the format says (see checkpoint.h).
template <class T>
nlohmann::json check_header(const std::string& header_text, const std::string& name) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const std::exception&) {
    throw failure(name, "header is not valid JSON");
  }
  if (!header.is_object()) throw failure(name, "header is not a JSON object");
  if (!header.contains("dtype") || !header["dtype"].is_string())
    throw failure(name, "header field 'dtype' is missing or not a string");
  if (!header.contains("tensors") || !header["tensors"].is_array())
    throw failure(name, "header field 'tensors' is missing or not an array");
  if (header.contains("meta") && !header["meta"].is_object())
    throw failure(name, "header field 'meta' is not an object");
  if (header["dtype"] != dtype_name<T>())
    throw failure(
        name, "dtype " + header["dtype"].dump() + " does not match the model's " + dtype_name<T>());
  return header;
}

// One tensor record's shape: an array of unsigned integers whose product stays below the limit.
Shape record_shape(const nlohmann::json& record, const std::string& name) {
  if (!record.is_object() || !record.contains("name") || !record["name"].is_string() ||
      record["name"].get<std::string>().empty() || !record.contains("shape") ||
      !record["shape"].is_array())
    throw failure(name,
                  "malformed tensor record in header (needs a non-empty string 'name' and "
                  "an array 'shape')");
  Shape shape;
  std::size_t count = 1;
  for (const auto& extent : record["shape"]) {
    if (!extent.is_number_unsigned() || extent.get<std::uint64_t>() > kMaxFileBytes)
      throw failure(name, "tensor '" + record["name"].get<std::string>() + "': malformed shape");
    shape.push_back(extent.get<std::size_t>());
    if (shape.back() != 0 && count > kMaxFileBytes / shape.back())  // count * extent, unwrapped
      throw failure(name, "tensor '" + record["name"].get<std::string>() + "': shape too large");
    count *= shape.back();
    if (count > kMaxFileBytes)
      throw failure(name, "tensor '" + record["name"].get<std::string>() + "': malformed shape");
  }
  return shape;
}

// The payload cut into tensors, each name unique and each value finite.
template <class T>
std::vector<std::pair<std::string, xt::xarray<T>>> read_tensors(const nlohmann::json& records,
                                                                const std::string& bytes,
                                                                const Framing& framing,
                                                                const std::string& name) {
  std::vector<std::pair<std::string, xt::xarray<T>>> tensors;
  std::set<std::string> seen;
  std::size_t offset = framing.payload_begin;
  for (const auto& record : records) {
    const Shape shape = record_shape(record, name);
    const std::string tensor = record["name"].get<std::string>();
    if (!seen.insert(tensor).second) throw failure(name, "tensor '" + tensor + "' appears twice");
    xt::xarray<T> values = xt::zeros<T>(shape);
    const std::size_t nbytes = values.size() * sizeof(T);
    if (nbytes > framing.payload_end - offset) throw failure(name, "truncated payload");
    if (nbytes > 0)
      std::memcpy(values.data(), bytes.data() + offset, nbytes);  // data() may be null
    offset += nbytes;
    for (const T v : values)
      if (!std::isfinite(v)) throw failure(name, "tensor '" + tensor + "' holds NaN or inf");
    tensors.emplace_back(tensor, std::move(values));
  }
  if (offset != framing.payload_end) throw failure(name, "payload size does not match the header");
  return tensors;
}

}  // namespace

template <class T>
CheckpointContents<T> parse_checkpoint(const std::string& bytes, const std::string& name) {
  const Framing framing = check_framing(bytes, name);
  const nlohmann::json header = check_header<T>(framing.header_text, name);
  CheckpointContents<T> contents;
  contents.tensors = read_tensors<T>(header["tensors"], bytes, framing, name);
  contents.meta = header.value("meta", nlohmann::json::object());
  return contents;
}

namespace {

// "a FIFO", "a directory": what a file that is not a regular file is.
std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// stat(path): a regular file, or throws naming what it is (before anything opens it: opening a
// FIFO blocks, opening a device may act on it).
struct stat regular_file_status(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw failure(path, "cannot open: " + io_reason(errno));
  if (!S_ISREG(st.st_mode))
    throw failure(path, "is " + file_kind(st.st_mode) + ", not a checkpoint file");
  return st;
}

// Opens the regular file `path` (refused before opening when it is not one; O_NONBLOCK, so a FIFO
// swapped in since cannot block) and returns the descriptor and the opened file's status.
int open_regular(const std::string& path, struct stat& st) {
  regular_file_status(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw failure(path, "cannot open: " + io_reason(errno));
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw failure(path, "is " + file_kind(st.st_mode) + ", not a checkpoint file");
  }
  return fd;
}

// Reads up to n bytes at the end of `bytes`; returns how many were read (fewer at end of file).
std::size_t read_some(int fd, std::string& bytes, std::size_t n, const std::string& path) {
  const std::size_t start = bytes.size();
  bytes.resize(start + n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, bytes.data() + start + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw failure(path, "read error: " + io_reason(errno));
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  bytes.resize(start + got);
  return got;
}

// The file's bytes: its magic first, then its size against max_bytes, then the rest.
std::string read_bounded(const std::string& path, std::size_t max_bytes) {
  struct stat st {};
  const int fd = open_regular(path, st);
  std::string bytes;
  try {
    const std::size_t size = static_cast<std::size_t>(st.st_size);
    read_some(fd, bytes, std::min<std::size_t>(size, kMagic.size() + 1), path);
    if (bytes.compare(0, std::string::npos, kMagic + " ") != 0)
      throw failure(path, "not a tapegrad checkpoint (bad magic)");
    if (size > max_bytes)
      throw failure(path, "is " + std::to_string(size) +
                              " bytes, larger than a checkpoint of this model can be (at most " +
                              std::to_string(max_bytes) + " bytes)");
    bytes.reserve(size);
    read_some(fd, bytes, size - bytes.size(), path);
    if (bytes.size() != size) throw failure(path, "changed size while it was being read");
  } catch (const std::bad_alloc&) {
    ::close(fd);
    throw failure(path, "is " + std::to_string(st.st_size) + " bytes, too large to read in memory");
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return bytes;
}

}  // namespace

template <class T>
CheckpointContents<T> read_checkpoint(const std::string& path, std::size_t max_bytes) {
  return parse_checkpoint<T>(read_bounded(path, max_bytes), path);
}

CheckpointLock::CheckpointLock(const std::string& path, const std::function<void()>& waiting) {
  for (bool told = false;;) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return;  // nothing to lock yet
    fd_ = open_regular(path, st);
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL) return;  // no locks here
      if (!told && waiting) waiting();
      told = true;
      while (::flock(fd_, LOCK_EX) != 0)
        if (errno != EINTR) {
          const int err = errno;
          ::close(fd_);
          fd_ = -1;
          throw failure(path, "cannot lock: " + io_reason(err));
        }
    }
    struct stat now {};  // a save replaced the file while we waited: lock the new one
    if (::stat(path.c_str(), &now) == 0 && now.st_ino == st.st_ino && now.st_dev == st.st_dev)
      return;
    ::close(fd_);
    fd_ = -1;
  }
}

CheckpointLock::CheckpointLock(CheckpointLock&& other) noexcept : fd_(other.fd_) {
  other.fd_ = -1;
}

CheckpointLock::~CheckpointLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

template <class T>
void restore_checkpoint(const CheckpointContents<T>& contents, const NamedTensors<T>& params,
                        Optimizer<T>& optimizer, const std::string& name) {
  std::vector<const xt::xarray<T>*> values(params.size(), nullptr);
  NamedArrays<T> state;
  for (const auto& [tensor, a] : contents.tensors) {
    const std::string prefix = optimizer_prefix_of(tensor);
    if (!prefix.empty() && prefix != optimizer.state_prefix())
      throw failure(name, "optimizer record '" + tensor + "' is not " + optimizer.name() +
                              "'s state (its records start with '" + optimizer.state_prefix() +
                              "')");
    if (!prefix.empty()) {
      state.emplace_back(tensor, a);
      continue;
    }
    std::size_t k = 0;
    while (k < params.size() && params[k].first != tensor) ++k;
    if (k == params.size())
      throw failure(name, "unexpected tensor '" + tensor + "' (not a parameter of this model)");
    if (to_shape(a.shape()) != params[k].second.shape())
      throw failure(name, "tensor '" + tensor + "' has shape " + shape_str(to_shape(a.shape())) +
                              ", the model's is " + shape_str(params[k].second.shape()));
    values[k] = &a;
  }
  for (std::size_t k = 0; k < params.size(); ++k)
    if (!values[k]) throw failure(name, "missing parameter '" + params[k].first + "'");
  try {
    optimizer.check_state(state);
  } catch (const std::invalid_argument& e) {
    throw failure(name, e.what());
  }
  // Everything checked: now change the model and the optimizer.
  for (std::size_t k = 0; k < params.size(); ++k) {
    Tensor<T> parameter = params[k].second;  // a handle: the model's own tensor
    parameter.mutable_value() = *values[k];
  }
  optimizer.load_state(state);
}

template <class T>
nlohmann::json load_checkpoint(const std::string& path, const NamedTensors<T>& params,
                               Optimizer<T>& optimizer) {
  const CheckpointContents<T> contents = read_checkpoint<T>(path);
  restore_checkpoint(contents, params, optimizer, path);
  return contents.meta;
}

template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params,
                     const nlohmann::json& meta) {
  SGD<T> no_state({}, T(0));  // an optimizer of no parameters writes no state
  save_checkpoint(path, params, no_state, meta);
}

template <class T>
nlohmann::json load_checkpoint(const std::string& path, const NamedTensors<T>& params) {
  CheckpointContents<T> contents = read_checkpoint<T>(path);
  auto& tensors = contents.tensors;  // the optimizer's records set aside, the parameters kept
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& t) { return !optimizer_prefix_of(t.first).empty(); }),
                tensors.end());
  SGD<T> no_state({}, T(0));
  restore_checkpoint(contents, params, no_state, path);
  return contents.meta;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template void save_checkpoint(const std::string&, const NamedTensors<T>&, Optimizer<T>&,         \
                                const nlohmann::json&);                                            \
  template std::string stage_checkpoint(const std::string&, const NamedTensors<T>&, Optimizer<T>&, \
                                        const nlohmann::json&);                                    \
  template CheckpointContents<T> parse_checkpoint(const std::string&, const std::string&);         \
  template CheckpointContents<T> read_checkpoint(const std::string&, std::size_t);                 \
  template void restore_checkpoint(const CheckpointContents<T>&, const NamedTensors<T>&,           \
                                   Optimizer<T>&, const std::string&);                             \
  template nlohmann::json load_checkpoint(const std::string&, const NamedTensors<T>&,              \
                                          Optimizer<T>&);                                          \
  template void save_checkpoint(const std::string&, const NamedTensors<T>&,                        \
                                const nlohmann::json&);                                            \
  template nlohmann::json load_checkpoint(const std::string&, const NamedTensors<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
