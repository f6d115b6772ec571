// The nadaraya_watson program on hostile file systems: --out on a file system of its own (a mount
// point, a bind mount, a symbolic link to another disk), a disk that fills while the CSVs, the
// figures or the checkpoint are written, a read-only file system, and the file size limit of
// `ulimit -f`. Whatever fails, the run ends with one line in words (exit 2 before training, exit 1
// after it), --out and the checkpoint are byte for byte as they were, and no staging directory is
// left. The tests that mount a tmpfs need root (mount(2)); elsewhere they are skipped with the
// reason.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"

using namespace tapegrad::testutil;

namespace {

// A tmpfs of `size` ("64k", "2m") mounted at `dir` while in scope; ok() is false (and why() says
// why) when mounting is not permitted.
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& dir, const std::string& size, unsigned long flags = 0) : dir_(dir) {
    fs::create_directories(dir);
    const std::string options = "size=" + size;
    if (::mount("tmpfs", dir.c_str(), "tmpfs", flags, options.c_str()) == 0)
      mounted_ = true;
    else
      why_ = std::string("cannot mount a tmpfs (needs root): ") + std::strerror(errno);
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string why_;
};

// A bind mount of `source` at `target` while in scope.
class BindMount {
 public:
  BindMount(const fs::path& source, const fs::path& target) : target_(target) {
    fs::create_directories(target);
    mounted_ = ::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) == 0;
  }
  ~BindMount() {
    if (mounted_) ::umount2(target_.c_str(), MNT_DETACH);
  }
  BindMount(const BindMount&) = delete;
  BindMount& operator=(const BindMount&) = delete;
  bool ok() const { return mounted_; }

 private:
  fs::path target_;
  bool mounted_ = false;
};

bool have_gnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;
}

// Fills the file system of `dir` with dir/filler until `room` bytes are left free.
void leave_free(const fs::path& dir, unsigned long long room) {
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(dir.c_str(), &vfs), 0);
  const unsigned long long free_bytes =
      static_cast<unsigned long long>(vfs.f_bavail) * static_cast<unsigned long long>(vfs.f_frsize);
  ASSERT_GT(free_bytes, room);
  std::ofstream(dir / "filler", std::ios::binary) << std::string(free_bytes - room, 'f');
}

// The epochs a checkpoint written by the program says it holds.
long epochs_done(const fs::path& ck) {
  const std::string bytes = slurp(ck);
  const std::size_t at = bytes.find("\"epochs_done\":");
  return at == std::string::npos ? -1 : std::stol(bytes.substr(at + 14));
}

// Exit `status`, one line on stderr holding every fragment, never "internal error".
void expect_failure_in_words(const Result& r, int status,
                             const std::vector<std::string>& fragments) {
  EXPECT_EQ(r.status, status) << r.out << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("nadaraya_watson: error: "), r.err.rfind("nadaraya_watson: error: "))
      << "more than one error line: " << r.err;
  for (const auto& f : fragments)
    EXPECT_NE(r.err.find(f), std::string::npos) << f << " in: " << r.err;
}

// Names in `dir` that the program's staging left behind.
std::vector<std::string> staging_left(const fs::path& dir) {
  std::vector<std::string> left;
  for (const auto& name : files_in(dir))
    if (name.find("staging") != std::string::npos || name.find(".tmp") != std::string::npos)
      left.push_back(name);
  return left;
}

}  // namespace

// --out a mount point, a directory on another file system reached through a symbolic link, and a
// bind mount: every run commits (renames into --out stay on its file system), and --resume ck
// --save ck advances the checkpoint exactly by the run's epochs.
TEST(CliFilesystem, OutOnItsOwnFileSystem) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", "8m");
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  const std::string ck = (dir / "ck").string();
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --save " + quote(ck) + " --out " +
                            quote((dir / "first").string()))
                .status,
            0);
  fs::create_directory(dir / "disk" / "real");
  fs::create_symlink(dir / "disk" / "real", dir / "link");
  fs::create_directory(dir / "source");
  BindMount bind(dir / "source", dir / "bound");
  ASSERT_TRUE(bind.ok());
  long expected = 1;
  for (const fs::path& out : {dir / "disk", dir / "link", dir / "bound", dir / "disk" / "sub"}) {
    SCOPED_TRACE(out.string());
    const std::string plots = have_gnuplot() && out == dir / "disk" ? "" : " --no-plots";
    const Result r = run_nw(dir, "--epochs 2 --resume " + quote(ck) + " --save " + quote(ck) +
                                     plots + " --out " + quote(out.string()));
    expected += 2;
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(fs::is_regular_file(out / "predictions.csv"));
    EXPECT_TRUE(fs::is_regular_file(out / "training.json"));
    EXPECT_EQ(epochs_done(ck), expected);
    EXPECT_EQ(staging_left(out), std::vector<std::string>());
  }
  EXPECT_TRUE(fs::is_regular_file(dir / "source" / "predictions.csv"));
  if (have_gnuplot()) {
    EXPECT_TRUE(fs::is_regular_file(dir / "disk" / "loss.png"));
  }
}

// The disk fills while gnuplot draws (the CSVs and plots.gp fit, the figures do not), and then
// while the CSVs are written: exit 1 naming the cause, --out and the checkpoint unchanged, no
// staging directory left.
TEST(CliFilesystem, DiskFullLeavesOutAndCheckpointAsTheyWere) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed";
  TempDir dir;
  TmpfsMount disk(dir / "disk", "2m");
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  const fs::path out = dir / "disk" / "out";
  const std::string ck = (dir / "ck").string();
  const std::string args = " --save " + quote(ck) + " --out " + quote(out.string());
  ASSERT_EQ(run_nw(dir, "--epochs 1" + args).status, 0);
  const auto before = snapshot(out);
  const std::string ck_before = slurp(ck);
  struct Case {
    unsigned long long room;
    std::vector<std::string> fragments;
  };
  // 300 KiB: the CSVs (~55 KB) and plots.gp (~190 KB) fit, the figures (~250 KB) do not.
  for (const Case& c :
       {Case{300 << 10, {"gnuplot"}}, Case{16 << 10, {"No space left on device", out.string()}}}) {
    SCOPED_TRACE(c.room);
    leave_free(dir / "disk", c.room);
    const Result r = run_nw(dir, "--epochs 2 --seed 4 --resume " + quote(ck) + args);
    expect_failure_in_words(r, 1, c.fragments);
    EXPECT_NE(r.err.find("left as it was"), std::string::npos) << r.err;
    EXPECT_TRUE(snapshot(out) == before) << "--out changed";
    EXPECT_EQ(slurp(ck), ck_before) << "the checkpoint advanced without the outputs";
    EXPECT_EQ(staging_left(out), std::vector<std::string>());
    EXPECT_EQ(staging_left(dir.path()), std::vector<std::string>());
    fs::remove(dir / "disk" / "filler");
  }
}

// The checkpoint's own file system is full: exit 1 in words, the checkpoint unchanged, nothing in
// --out, no temporary left beside the checkpoint.
TEST(CliFilesystem, DiskFullWhileSavingTheCheckpoint) {
  TempDir dir;
  TmpfsMount disk(dir / "disk", "64k");
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  const std::string ck = (dir / "disk" / "ck").string();
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --save " + quote(ck) + " --out " +
                            quote((dir / "first").string()))
                .status,
            0);
  const std::string ck_before = slurp(ck);
  leave_free(dir / "disk", 0);
  const Result r = run_nw(dir, "--epochs 1 --no-plots --resume " + quote(ck) + " --save " +
                                   quote(ck) + " --out " + quote((dir / "out").string()));
  expect_failure_in_words(r, 1, {"No space left on device", ck});
  EXPECT_EQ(slurp(ck), ck_before);
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_EQ(staging_left(dir / "disk"), std::vector<std::string>());
}

// A read-only file system as --out, under --out, or holding --save: exit 2 before the first
// epoch, naming the path and the reason.
TEST(CliFilesystem, ReadOnlyFileSystemRefusedBeforeTraining) {
  TempDir dir;
  TmpfsMount disk(dir / "ro", "64k", MS_RDONLY);
  if (!disk.ok()) GTEST_SKIP() << disk.why();
  const std::string ro = (dir / "ro").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--out " + quote(ro), "--out " + ro},
      {"--out " + quote(ro + "/sub"), "--out " + ro + "/sub"},
      {"--save " + quote(ro + "/ck") + " --out " + quote((dir / "out").string()), "--save"},
  };
  for (const auto& [args, fragment] : cases) {
    SCOPED_TRACE(args);
    const Result r = run_nw(dir, "--no-plots " + args);
    expect_failure_in_words(r, 2, {fragment, "Read-only file system"});
    EXPECT_TRUE(epoch_lines(r.out).empty()) << "trained first: " << r.out;
    EXPECT_FALSE(fs::exists(dir / "out"));
  }
}

// ulimit -f: a write past the file size limit is an error in words (not a death by SIGXFSZ), with
// the limit named; --out keeps the previous run's files and no staging directory is left.
TEST(CliFilesystem, FileSizeLimitIsAnErrorInWords) {
  TempDir dir;
  const fs::path out = dir / "out";
  ASSERT_EQ(run_nw(dir, "--epochs 1 --no-plots --out " + quote(out.string())).status, 0);
  const auto before = snapshot(out);
  // 20 blocks (of 512 bytes in sh, 1 KiB in bash): attention_nonparametric.csv (~34 KB) passes.
  const Result r =
      run_nw(dir, "--epochs 1 --seed 3 --no-plots --out " + quote(out.string()), "ulimit -f 20;");
  expect_failure_in_words(r, 1, {"File too large", "the file size limit, ulimit -f, is"});
  EXPECT_TRUE(snapshot(out) == before);
  EXPECT_EQ(staging_left(out), std::vector<std::string>());
  EXPECT_EQ(staging_left(dir.path()), std::vector<std::string>());
}
