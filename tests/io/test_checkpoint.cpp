// Checkpoints: a round trip restores parameters and optimizer state bit for bit; every kind of bad
// file is rejected with CheckpointError and leaves the model untouched; a writer killed at random
// moments never leaves a torn file behind (the old or the new checkpoint loads, nothing else);
// reading refuses what is not a regular file before opening it and checks the magic and the size
// before reading; a save that cannot write is a CheckpointWriteError in words; and CheckpointLock
// serialises processes that read a checkpoint and save it again.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "checkpoint_craft.h"
#include "io/checkpoint.h"
#include "tapegrad.h"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("tapegrad_ck_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

struct Model {
  Tensor<double> w{xt::xarray<double>{0.25}, true};
  Tensor<double> b{xt::xarray<double>{{1.0, -2.0, 3.0}}, true};
  SGD<double> opt{{w, b}, 0.1, 0.9};
  NamedTensors<double> named() { return {{"w", w}, {"b", b}}; }
  // One momentum step so the optimizer has state worth saving.
  void step() {
    opt.zero_grad();
    sum(square(b * w)).backward();
    opt.step();
  }
};

}  // namespace

TEST(ReliabilityCheckpoint, RoundTripRestoresValuesAndMomentumExactly) {
  const fs::path dir = temp_dir("roundtrip");
  Model a;
  a.step();
  auto named_a = a.named();
  save_checkpoint((dir / "ck").string(), named_a, a.opt, {{"epochs_done", 1}});
  Model b;
  auto named_b = b.named();
  const auto meta = load_checkpoint((dir / "ck").string(), named_b, b.opt);
  EXPECT_EQ(meta.value("epochs_done", 0), 1);
  EXPECT_EQ(b.w.value(), a.w.value());
  EXPECT_EQ(b.b.value(), a.b.value());
  ASSERT_TRUE(b.opt.has_momentum_buffer()[0]);
  EXPECT_EQ(b.opt.momentum_buffers()[1], a.opt.momentum_buffers()[1]);
  // Continuing from the checkpoint is the same as never stopping.
  a.step();
  b.step();
  EXPECT_EQ(b.w.value(), a.w.value());
  EXPECT_EQ(b.b.value(), a.b.value());
  EXPECT_FALSE(fs::exists(dir / ("ck.tmp." + std::to_string(::getpid()))));
  fs::remove_all(dir);
}

// save and load take their parameters in the same forms: a braced list of names and tensors
// works for both (the tensors are handles, so loading writes into the model's own tensors), with
// an optimizer or without one.
TEST(ReliabilityCheckpoint, SaveAndLoadTakeTheSameArgumentForms) {
  const fs::path dir = temp_dir("forms");
  Model a, b;
  a.step();
  save_checkpoint((dir / "ck").string(), {{"w", a.w}, {"b", a.b}}, a.opt);
  load_checkpoint((dir / "ck").string(), {{"w", b.w}, {"b", b.b}}, b.opt);
  EXPECT_EQ(b.w.value(), a.w.value());
  EXPECT_EQ(b.b.value(), a.b.value());

  // Parameters alone: no optimizer to save, and a file with optimizer state loads into a model
  // without one (the state is ignored); the parameters are checked as ever.
  Model c;
  save_checkpoint<double>((dir / "params").string(), {{"w", a.w}, {"b", a.b}});
  load_checkpoint<double>((dir / "params").string(), {{"w", c.w}, {"b", c.b}});
  EXPECT_EQ(c.w.value(), a.w.value());
  Model d;
  load_checkpoint<double>((dir / "ck").string(), {{"w", d.w}, {"b", d.b}});
  EXPECT_EQ(d.b.value(), a.b.value());
  EXPECT_THROW(load_checkpoint<double>((dir / "ck").string(), {{"w", d.w}}), CheckpointError);
  fs::remove_all(dir);
}

TEST(ReliabilityCheckpoint, BadFilesAreRejectedAndTheModelIsUnchanged) {
  const fs::path dir = temp_dir("bad");
  Model a;
  a.step();
  auto named_a = a.named();
  const fs::path good = dir / "good";
  save_checkpoint(good.string(), named_a, a.opt);
  const std::string bytes = slurp(good);

  std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"truncated in the payload", bytes.substr(0, bytes.size() - 40)},
      {"truncated in the header", bytes.substr(0, 40)},
      {"not a checkpoint", "hello world\n"},
      {"wrong version", "tapegrad-checkpoint 2" + bytes.substr(bytes.find('\n'))},
      {"trailing garbage", bytes + "x"},
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x40;  // one flipped bit in the middle
  cases.push_back({"corrupted byte", flipped});

  for (const auto& [what, content] : cases) {
    const fs::path p = dir / "bad";
    spit(p, content);
    Model m;
    auto named = m.named();
    const auto w0 = m.w.value();
    const auto b0 = m.b.value();
    EXPECT_THROW(load_checkpoint(p.string(), named, m.opt), CheckpointError) << what;
    EXPECT_EQ(m.w.value(), w0) << what;
    EXPECT_EQ(m.b.value(), b0) << what;
    EXPECT_FALSE(m.opt.has_momentum_buffer()[0]) << what;
  }
  {  // a missing file
    Model m;
    auto named = m.named();
    EXPECT_THROW(load_checkpoint((dir / "nope").string(), named, m.opt), CheckpointError);
  }
  {  // wrong dtype: saved as double, loaded into a float model
    Tensor<float> w(xt::xarray<float>{0.5f}, true), b(xt::xarray<float>{{1.f, 2.f, 3.f}}, true);
    SGD<float> opt({w, b}, 0.1f);
    NamedTensors<float> named = {{"w", w}, {"b", b}};
    try {
      load_checkpoint(good.string(), named, opt);
      ADD_FAILURE() << "a float64 checkpoint loaded into a float32 model";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("dtype"), std::string::npos) << e.what();
    }
    EXPECT_EQ(w.value()(0), 0.5f);
  }
  {  // wrong shape and wrong names
    Tensor<double> w(xt::xarray<double>{0.5}, true), b(xt::xarray<double>{1.0, 2.0}, true);
    SGD<double> opt({w, b}, 0.1);
    NamedTensors<double> named = {{"w", w}, {"b", b}};
    EXPECT_THROW(load_checkpoint(good.string(), named, opt), CheckpointError);
    EXPECT_EQ(w.value()(0), 0.5);
    NamedTensors<double> renamed = {{"w", w}, {"bias", b}};
    EXPECT_THROW(load_checkpoint(good.string(), renamed, opt), CheckpointError);
  }
  fs::remove_all(dir);
}

// A child process saves checkpoints in a loop (alternating two large, distinguishable states) and
// is killed with SIGKILL at a random moment; afterwards the file must load and hold one whole
// state.
TEST(ReliabilityCheckpoint, KilledWriterNeverLeavesATornFile) {
  const fs::path dir = temp_dir("kill");
  const fs::path path = dir / "ck";
  constexpr std::size_t kBig = 1 << 18;  // 2 MiB of doubles: writes take long enough to be hit
  auto make = [&](double fill) {
    Tensor<double> big(xt::xarray<double>(xt::zeros<double>({kBig})), true);
    big.mutable_value().fill(fill);
    return big;
  };
  {
    Tensor<double> big = make(0.0);
    SGD<double> opt({big}, 0.1);
    save_checkpoint(path.string(), {{"big", big}}, opt, {{"state", 0}});
  }
  std::mt19937 rng(7);
  int old_seen = 0, new_seen = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the writer: never returns
      for (int k = 1;; ++k) {
        Tensor<double> big = make(double(k));
        SGD<double> opt({big}, 0.1);
        save_checkpoint(path.string(), {{"big", big}}, opt, {{"state", k}});
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 300));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));

    Tensor<double> big = make(-1.0);
    SGD<double> opt({big}, 0.1);
    NamedTensors<double> named = {{"big", big}};
    nlohmann::json meta;
    ASSERT_NO_THROW(meta = load_checkpoint(path.string(), named, opt)) << "round " << round;
    const double state = meta.value("state", -1);
    EXPECT_TRUE(
        std::all_of(big.value().begin(), big.value().end(), [&](double v) { return v == state; }))
        << "round " << round << ": a checkpoint mixing two states";
    (state == 0 ? old_seen : new_seen)++;
  }
  EXPECT_GT(new_seen, 0);  // the writer did get checkpoints through before it was killed
  // Kills leave "ck.tmp.<pid>" behind; the next save removes every one whose process is gone.
  {
    Tensor<double> big = make(0.5);
    SGD<double> opt({big}, 0.1);
    save_checkpoint(path.string(), {{"big", big}}, opt, {{"state", 0}});
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find("ck.tmp."), std::string::npos)
        << "debris after a later save: " << e.path();
  std::cout << "[kill] 12 kills: " << new_seen << " newer and " << old_seen
            << " initial checkpoints, all whole\n";
  fs::remove_all(dir);
}

// Files whose checksum is right but whose contents are wrong in meaning: each is rejected with a
// one-line CheckpointError naming the problem, and the model and optimizer stay as they were.
TEST(ReliabilityCheckpoint, WrongMeaningWithAValidChecksumIsRejected) {
  using testutil::craft_checkpoint;
  using testutil::doubles;
  const fs::path dir = temp_dir("meaning");
  const std::string wb = R"([{"name":"w","shape":[1]},{"name":"b","shape":[1,3]}])";
  auto header = [](const std::string& dtype, const std::string& tensors, const std::string& meta) {
    return R"({"dtype":)" + dtype + R"(,"tensors":)" + tensors + R"(,"meta":)" + meta + "}";
  };
  const std::string ok = doubles({0.5, 1, 2, 3});
  struct Case {
    std::string what, bytes, fragment;
  };
  const std::vector<Case> cases = {
      {"dtype a number", craft_checkpoint(header("64", wb, "{}"), ok), "'dtype'"},
      {"tensors an object", craft_checkpoint(header(R"("float64")", "{}", "{}"), ok), "'tensors'"},
      {"meta a string", craft_checkpoint(header(R"("float64")", wb, R"("x")"), ok), "'meta'"},
      {"header an array", craft_checkpoint("[1,2]", ok), "not a JSON object"},
      {"empty name",
       craft_checkpoint(header(R"("float64")", R"([{"name":"","shape":[4]}])", "{}"), ok),
       "malformed tensor record"},
      {"shape of strings",
       craft_checkpoint(header(R"("float64")", R"([{"name":"w","shape":["1"]}])", "{}"), ok),
       "malformed shape"},
      {"shape whose product wraps to 0",
       craft_checkpoint(
           header(R"("float64")", R"([{"name":"w","shape":[4294967296,4294967296]}])", "{}"), ""),
       "shape too large"},
      {"duplicated name",
       craft_checkpoint(header(R"("float64")",
                               R"([{"name":"w","shape":[1]},{"name":"w","shape":[1]},)"
                               R"({"name":"b","shape":[1,3]}])",
                               "{}"),
                        doubles({0.5, 0.5, 1, 2, 3})),
       "appears twice"},
      {"NaN parameter",
       craft_checkpoint(header(R"("float64")", wb, "{}"), doubles({0.5, 1, std::nan(""), 3})),
       "NaN or inf"},
      {"inf momentum",
       craft_checkpoint(header(R"("float64")",
                               R"([{"name":"w","shape":[1]},{"name":"b","shape":[1,3]},)"
                               R"({"name":"sgd.momentum_buffer.0","shape":[1]}])",
                               "{}"),
                        doubles({0.5, 1, 2, 3, INFINITY})),
       "NaN or inf"},
      {"momentum index out of range",
       craft_checkpoint(header(R"("float64")",
                               R"([{"name":"w","shape":[1]},{"name":"b","shape":[1,3]},)"
                               R"({"name":"sgd.momentum_buffer.99999999999","shape":[1]}])",
                               "{}"),
                        doubles({0.5, 1, 2, 3, 1})),
       "does not match the model"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    spit(dir / "ck", c.bytes);
    Model m;
    auto named = m.named();
    try {
      load_checkpoint((dir / "ck").string(), named, m.opt);
      ADD_FAILURE() << "accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(c.fragment), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    EXPECT_EQ(m.w.value()(0), 0.25);
    EXPECT_EQ(m.b.value()(0, 1), -2.0);
    EXPECT_FALSE(m.opt.has_momentum_buffer()[0]);
  }
  // The crafting is right: the same bytes with sensible contents load.
  spit(dir / "ck", craft_checkpoint(header(R"("float64")", wb, R"({"epochs_done":2})"), ok));
  Model m;
  auto named = m.named();
  EXPECT_EQ(load_checkpoint((dir / "ck").string(), named, m.opt).value("epochs_done", 0), 2);
  EXPECT_EQ(m.b.value()(0, 2), 3.0);
  fs::remove_all(dir);
}

// A save removes the temporaries of earlier saves whose process is gone, and only those.
TEST(ReliabilityCheckpoint, StaleTemporariesAreRemovedByTheNextSave) {
  const fs::path dir = temp_dir("stale");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer exists
  const fs::path dead = dir / ("ck.tmp." + std::to_string(child));
  const fs::path alive = dir / "ck.tmp.1";  // init is alive: maybe another saver, left alone
  const fs::path other = dir / "other.tmp.77";
  for (const auto& p : {dead, alive, other}) spit(p, "partial");
  Model a;
  auto named = a.named();
  save_checkpoint((dir / "ck").string(), named, a.opt);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(other));
  fs::remove_all(dir);
}

namespace {

// Runs `body` in a child process (which exits with body's return value) and waits at most
// `seconds`; returns the exit status, or -1 when the child had to be killed.
int in_child(const std::function<int()>& body, double seconds = 10) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// 0 when read_checkpoint<double>(path, max_bytes) throws CheckpointError containing `fragment`.
int refuses(const std::string& path, const std::string& fragment,
            std::size_t max_bytes = kMaxCheckpointFileBytes) {
  try {
    read_checkpoint<double>(path, max_bytes);
  } catch (const CheckpointError& e) {
    return std::string(e.what()).find(fragment) != std::string::npos ? 0 : 2;
  }
  return 1;
}

}  // namespace

// A FIFO (whose open would block), a device and a directory are refused before they are opened;
// a 2 GiB file is refused after its first bytes (no magic) or its size (over max_bytes), in
// milliseconds, without being read.
TEST(ReliabilityCheckpoint, ReadRefusesNonRegularAndOversizedFilesFirst) {
  const fs::path dir = temp_dir("read_limits");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_EQ(in_child([&] { return refuses((dir / "fifo").string(), "is a FIFO"); }), 0);
  EXPECT_EQ(in_child([] { return refuses("/dev/zero", "is a character device"); }), 0);
  EXPECT_EQ(in_child([&] { return refuses(dir.string(), "is a directory"); }), 0);
  const fs::path big = dir / "big", magic = dir / "big_magic";
  spit(big, "PK\x03\x04 a zip, say");
  fs::resize_file(big, std::uintmax_t(2) << 30);  // sparse
  spit(magic, "tapegrad-checkpoint 1\n");
  fs::resize_file(magic, std::uintmax_t(2) << 30);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(refuses(big.string(), "bad magic"), 0);
  EXPECT_EQ(refuses(magic.string(), "2147483648 bytes, larger than", std::size_t(1) << 20), 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 0.5) << "read the 2 GiB files";
  fs::remove_all(dir);
}

// Under a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) a save fails with CheckpointWriteError
// naming the cause; the old checkpoint stays whole and no temporary is left.
TEST(ReliabilityCheckpoint, SaveThatCannotWriteIsAWriteErrorInWords) {
  const fs::path dir = temp_dir("write_error");
  const fs::path path = dir / "ck";
  Model a;
  auto named = a.named();
  save_checkpoint(path.string(), named, a.opt, {{"epochs_done", 1}});
  const std::string before = slurp(path);
  const int status = in_child([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{100, 100};  // bytes: the header alone is longer
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 3;
    Model b;
    auto named_b = b.named();
    try {
      save_checkpoint(path.string(), named_b, b.opt, {{"epochs_done", 2}});
    } catch (const CheckpointWriteError& e) {
      const std::string what = e.what();
      return what.find("File too large") != std::string::npos &&
                     what.find("ulimit -f") != std::string::npos
                 ? 0
                 : 2;
    }
    return 1;
  });
  EXPECT_EQ(status, 0);
  EXPECT_EQ(slurp(path), before);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  fs::remove_all(dir);
}

// A name long enough that "<name>.tmp.<pid>" would pass NAME_MAX saves (the temporary's name is
// cut); a symbolic link saves into the file it names and stays a link.
TEST(ReliabilityCheckpoint, LongNamesAndSymbolicLinksSave) {
  const fs::path dir = temp_dir("names");
  Model a;
  auto named = a.named();
  const fs::path long_name = dir / std::string(250, 'c');
  save_checkpoint(long_name.string(), named, a.opt, {{"epochs_done", 3}});
  EXPECT_EQ(read_checkpoint<double>(long_name.string()).meta["epochs_done"], 3);
  fs::create_directory(dir / "elsewhere");
  fs::create_symlink(dir / "elsewhere" / "ck", dir / "link");
  save_checkpoint((dir / "link").string(), named, a.opt, {{"epochs_done", 4}});
  EXPECT_TRUE(fs::is_symlink(dir / "link"));
  EXPECT_EQ(read_checkpoint<double>((dir / "elsewhere" / "ck").string()).meta["epochs_done"], 4);
  fs::remove_all(dir);
}

// Processes that each lock a checkpoint, read its counter, save counter + 1 and unlock never lose
// an increment, although every save replaces the locked file (the lock follows the replacement).
TEST(ReliabilityCheckpoint, LockSerialisesReadModifySave) {
  const fs::path dir = temp_dir("lock");
  const std::string path = (dir / "ck").string();
  {
    Model a;
    auto named = a.named();
    save_checkpoint(path, named, a.opt, {{"count", 0}});
  }
  constexpr int kProcesses = 4, kRounds = 25;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int k = 0; k < kRounds; ++k) {
        CheckpointLock lock(path);
        if (!lock.held()) ::_exit(2);
        Model m;
        auto named = m.named();
        const nlohmann::json meta = load_checkpoint(path, named, m.opt);
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // widen the window
        save_checkpoint(path, named, m.opt, {{"count", meta["count"].get<int>() + 1}});
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (const pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(read_checkpoint<double>(path).meta["count"], kProcesses * kRounds);
  EXPECT_FALSE(CheckpointLock((dir / "absent").string()).held());
  fs::remove_all(dir);
}
