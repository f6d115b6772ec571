#include "io/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace tapegrad {

namespace {

const std::string kMagic = "tapegrad-checkpoint";
const std::string kTrailerTag = "\nfnv1a64 ";
// The state prefixes of the optimizers tapegrad has (optim/optimizer.h): a record starting with
// one of them is optimizer state, not a parameter.
const char* const kOptimizerPrefixes[] = {"sgd.", "adam.", "adamw."};
constexpr std::size_t kMaxFileBytes = std::size_t(1) << 34;  // 16 GiB: anything larger is not ours

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

// write(2) until done; throws on error.
void write_all(int fd, const std::string& bytes, const std::string& path) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw failure(path, std::string("write failed: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(w);
  }
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
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() == prefix.size() ||
        name.size() > prefix.size() + 9)
      continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove(entry.path(), ec);
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

template <class T>
std::string stage_checkpoint(const std::string& path, const NamedTensors<T>& params,
                             Optimizer<T>& optimizer, const nlohmann::json& meta) {
  for (const auto& param : params)  // loading would take it for optimizer state
    if (!optimizer_prefix_of(param.first).empty())
      throw failure(path, "parameter name '" + param.first + "' starts with an optimizer's prefix");
  const std::string bytes = serialize(params, optimizer, meta);
  remove_stale_temporaries(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw failure(path, "cannot create " + tmp + ": " + std::strerror(errno));
  try {
    write_all(fd, bytes, path);
    if (::fsync(fd) != 0) throw failure(path, std::string("fsync failed: ") + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  return tmp;
}

template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params,
                     Optimizer<T>& optimizer, const nlohmann::json& meta) {
  const std::string tmp = stage_checkpoint(path, params, optimizer, meta);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw failure(path, "rename failed: " + err);
  }
  fsync_directory_of(path);  // make the rename itself durable
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

template <class T>
CheckpointContents<T> read_checkpoint(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw failure(path, "is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw failure(path, std::string("cannot open: ") + std::strerror(errno));
  if (!std::filesystem::is_regular_file(path, ec)) throw failure(path, "not a regular file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileBytes) throw failure(path, "unreadable or larger than 16 GiB");
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) throw failure(path, "read error");
  return parse_checkpoint<T>(bytes, path);
}

template <class T>
void restore_checkpoint(const CheckpointContents<T>& contents, NamedTensors<T>& params,
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
  for (std::size_t k = 0; k < params.size(); ++k) params[k].second.mutable_value() = *values[k];
  optimizer.load_state(state);
}

template <class T>
nlohmann::json load_checkpoint(const std::string& path, NamedTensors<T>& params,
                               Optimizer<T>& optimizer) {
  const CheckpointContents<T> contents = read_checkpoint<T>(path);
  restore_checkpoint(contents, params, optimizer, path);
  return contents.meta;
}

#define TAPEGRAD_INSTANTIATE(T)                                                                    \
  template void save_checkpoint(const std::string&, const NamedTensors<T>&, Optimizer<T>&,         \
                                const nlohmann::json&);                                            \
  template std::string stage_checkpoint(const std::string&, const NamedTensors<T>&, Optimizer<T>&, \
                                        const nlohmann::json&);                                    \
  template CheckpointContents<T> parse_checkpoint(const std::string&, const std::string&);         \
  template CheckpointContents<T> read_checkpoint(const std::string&);                              \
  template void restore_checkpoint(const CheckpointContents<T>&, NamedTensors<T>&, Optimizer<T>&,  \
                                   const std::string&);                                            \
  template nlohmann::json load_checkpoint(const std::string&, NamedTensors<T>&, Optimizer<T>&);
TAPEGRAD_INSTANTIATE(float)
TAPEGRAD_INSTANTIATE(double)
#undef TAPEGRAD_INSTANTIATE

}  // namespace tapegrad
