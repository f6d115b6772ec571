#include "models/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tapegrad {

namespace {

const std::string kMagic = "tapegrad-checkpoint";
constexpr std::size_t kMaxFileBytes = std::size_t(1) << 34;  // 16 GiB: anything larger is not ours

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

// write(2) until done; throws on error.
void write_all(int fd, const std::string& bytes, const std::string& path) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError("checkpoint " + path + ": write failed: " + std::strerror(errno));
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

}  // namespace

template <class T>
void save_checkpoint(const std::string& path, const NamedTensors<T>& params, SGD<T>& optimizer,
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
  for (std::size_t i = 0; i < optimizer.momentum_buffers().size(); ++i) {
    if (!optimizer.has_momentum_buffer()[i]) continue;
    const auto& b = optimizer.momentum_buffers()[i];
    header["tensors"].push_back(
        {{"name", "sgd.momentum_buffer." + std::to_string(i)}, {"shape", to_shape(b.shape())}});
    append_raw(payload, b);
  }
  const std::string h = header.dump();
  std::string bytes = kMagic + " " + std::to_string(kCheckpointVersion) + "\n" +
                      std::to_string(h.size()) + "\n" + h + payload;
  bytes += "\nfnv1a64 " + hex16(fnv1a64(bytes.data(), bytes.size())) + "\n";

  const std::filesystem::path target(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw CheckpointError("checkpoint " + path + ": cannot create " + tmp + ": " +
                          std::strerror(errno));
  try {
    write_all(fd, bytes, path);
    if (::fsync(fd) != 0)
      throw CheckpointError("checkpoint " + path + ": fsync failed: " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw CheckpointError("checkpoint " + path + ": rename failed: " + err);
  }
  // Make the rename itself durable.
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

template <class T>
nlohmann::json load_checkpoint(const std::string& path, NamedTensors<T>& params,
                               SGD<T>& optimizer) {
  auto fail = [&](const std::string& why) {
    return CheckpointError("checkpoint " + path + ": " + why);
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw fail("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail(std::string("cannot open: ") + std::strerror(errno));
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileBytes) throw fail("unreadable or too large");
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (!in) throw fail("read error");

  // Line 1: magic and version.
  const auto nl1 = bytes.find('\n');
  if (nl1 == std::string::npos || bytes.compare(0, kMagic.size() + 1, kMagic + " ") != 0)
    throw fail("not a tapegrad checkpoint (bad magic)");
  const std::string version = bytes.substr(kMagic.size() + 1, nl1 - kMagic.size() - 1);
  if (version != std::to_string(kCheckpointVersion))
    throw fail("unsupported format version '" + version.substr(0, 20) +
               "' (this build reads version " + std::to_string(kCheckpointVersion) + ")");

  // Trailer: the hash of everything before it.
  const std::string tag = "\nfnv1a64 ";
  const std::size_t trailer_len = tag.size() + 16 + 1;
  if (bytes.size() < nl1 + 1 + trailer_len) throw fail("truncated");
  const std::size_t body = bytes.size() - trailer_len;
  if (bytes.compare(body, tag.size(), tag) != 0 || bytes.back() != '\n')
    throw fail("truncated (no checksum trailer)");
  if (bytes.substr(body + tag.size(), 16) != hex16(fnv1a64(bytes.data(), body)))
    throw fail("checksum mismatch (corrupted)");

  // Line 2 and the header.
  const auto nl2 = bytes.find('\n', nl1 + 1);
  if (nl2 == std::string::npos || nl2 >= body) throw fail("bad header length line");
  std::size_t hlen = 0;
  try {
    hlen = std::stoull(bytes.substr(nl1 + 1, nl2 - nl1 - 1));
  } catch (const std::exception&) {
    throw fail("bad header length line");
  }
  if (hlen > body - nl2 - 1) throw fail("header longer than the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(nl2 + 1, hlen));
  } catch (const std::exception&) {
    throw fail("header is not valid JSON");
  }
  if (!header.is_object() || !header.contains("dtype") || !header.contains("tensors") ||
      !header["tensors"].is_array())
    throw fail("header lacks dtype or tensors");
  if (header["dtype"] != dtype_name<T>())
    throw fail("dtype " + header["dtype"].dump() + " does not match the model's " +
               dtype_name<T>());

  // Every tensor: name, shape, bytes. Collected first, assigned only when all are valid.
  std::size_t off = nl2 + 1 + hlen;
  std::vector<std::pair<std::string, xt::xarray<T>>> loaded;
  for (const auto& rec : header["tensors"]) {
    if (!rec.is_object() || !rec.contains("name") || !rec["name"].is_string() ||
        !rec.contains("shape") || !rec["shape"].is_array())
      throw fail("malformed tensor record in header");
    Shape shape;
    std::size_t count = 1;
    for (const auto& e : rec["shape"]) {
      if (!e.is_number_unsigned() || e.get<std::uint64_t>() > kMaxFileBytes)
        throw fail("malformed shape in header");
      shape.push_back(e.get<std::size_t>());
      count *= shape.back();
      if (count > kMaxFileBytes) throw fail("malformed shape in header");
    }
    const std::size_t nbytes = count * sizeof(T);
    if (nbytes > body - off) throw fail("truncated payload");
    xt::xarray<T> a = xt::zeros<T>(shape);
    std::memcpy(a.data(), bytes.data() + off, nbytes);
    off += nbytes;
    loaded.emplace_back(rec["name"].get<std::string>(), std::move(a));
  }
  if (off != body) throw fail("payload size does not match the header");

  // Match against the model.
  std::vector<const xt::xarray<T>*> values(params.size(), nullptr);
  std::vector<const xt::xarray<T>*> buffers(optimizer.momentum_buffers().size(), nullptr);
  for (const auto& [name, a] : loaded) {
    const std::string prefix = "sgd.momentum_buffer.";
    if (name.rfind(prefix, 0) == 0) {
      std::size_t i = 0;
      try {
        i = std::stoull(name.substr(prefix.size()));
      } catch (const std::exception&) {
        throw fail("bad optimizer record '" + name + "'");
      }
      if (i >= buffers.size() || to_shape(a.shape()) != optimizer.params()[i].shape())
        throw fail("optimizer record '" + name + "' does not match the model");
      buffers[i] = &a;
      continue;
    }
    std::size_t k = 0;
    while (k < params.size() && params[k].first != name) ++k;
    if (k == params.size())
      throw fail("unexpected tensor '" + name + "' (not a parameter of this model)");
    if (to_shape(a.shape()) != params[k].second.shape())
      throw fail("tensor '" + name + "' has shape " + shape_str(to_shape(a.shape())) +
                 ", the model's is " + shape_str(params[k].second.shape()));
    values[k] = &a;
  }
  for (std::size_t k = 0; k < params.size(); ++k)
    if (!values[k]) throw fail("missing parameter '" + params[k].first + "'");

  for (std::size_t k = 0; k < params.size(); ++k) params[k].second.mutable_value() = *values[k];
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    optimizer.has_momentum_buffer()[i] = buffers[i] != nullptr;
    optimizer.momentum_buffers()[i] = buffers[i] ? *buffers[i] : xt::xarray<T>();
  }
  return header.value("meta", nlohmann::json::object());
}

template void save_checkpoint(const std::string&, const NamedTensors<float>&, SGD<float>&,
                              const nlohmann::json&);
template void save_checkpoint(const std::string&, const NamedTensors<double>&, SGD<double>&,
                              const nlohmann::json&);
template nlohmann::json load_checkpoint(const std::string&, NamedTensors<float>&, SGD<float>&);
template nlohmann::json load_checkpoint(const std::string&, NamedTensors<double>&, SGD<double>&);

}  // namespace tapegrad
