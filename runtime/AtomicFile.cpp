#include "AtomicFile.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <streambuf>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "Error.h"

namespace cnnc {

namespace {

// A stream buffer onto a file descriptor that keeps the first write error's
// errno: std::ofstream neither reports errno nor can be fsynced.
class FileDescriptorBuffer : public std::streambuf {
 public:
  explicit FileDescriptorBuffer(int fd) : fd_(fd), buffer_(1 << 16) { resetPut(); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!flushBuffer()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }

  std::streamsize xsputn(const char* bytes, std::streamsize count) override {
    // Large blocks (tensor data) go to the file without a copy.
    if (count < static_cast<std::streamsize>(buffer_.size()))
      return std::streambuf::xsputn(bytes, count);
    if (!flushBuffer() || !writeAll(bytes, static_cast<size_t>(count))) return 0;
    return count;
  }

  int sync() override { return flushBuffer() ? 0 : -1; }

 private:
  void resetPut() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }

  bool flushBuffer() {
    bool ok = writeAll(pbase(), static_cast<size_t>(pptr() - pbase()));
    resetPut();
    return ok;
  }

  bool writeAll(const char* bytes, size_t count) {
    if (error_ != 0) return false;
    while (count > 0) {
      ssize_t written = ::write(fd_, bytes, count);
      if (written < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      bytes += written;
      count -= static_cast<size_t>(written);
    }
    return true;
  }

  int fd_;
  int error_ = 0;
  std::vector<char> buffer_;
};

std::string systemReason(int error) {
  return std::system_category().message(error);
}

// A name beside `path` that no other writer, in this process or another,
// picks at the same time (O_EXCL settles the rare collision).
std::string temporaryName(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  uint64_t ticks =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(ticks % 1000000007u);
}

// Makes the rename itself durable. Best effort: the new file is already in
// place, so a failure here is no reason to report the write as failed.
void syncDirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string directory = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void writeFileAtomically(const std::string& path,
                         const std::function<void(std::ostream&)>& writer) {
  auto failure = [&](const std::string& step, int error) {
    return Error("cannot write '" + path + "': " + step + systemReason(error));
  };
  if (path.empty()) throw Error("cannot write a file with an empty name");

  std::string temporary;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    temporary = temporaryName(path);
    fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && (errno != EEXIST || attempt == 100)) throw failure("", errno);
  }
  auto discard = [&] {
    if (fd >= 0) ::close(fd);
    ::unlink(temporary.c_str());
  };

  // Replacing a file should not change who may read it.
  struct stat existing;
  if (::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode))
    ::fchmod(fd, existing.st_mode & 07777);

  try {
    FileDescriptorBuffer buffer(fd);
    std::ostream out(&buffer);
    writer(out);
    out.flush();
    if (buffer.error() != 0) throw failure("write: ", buffer.error());
    if (!out) throw Error("cannot write '" + path + "': the output stream failed");
  } catch (...) {
    discard();
    throw;
  }
  if (::fsync(fd) != 0) {
    int error = errno;
    discard();
    throw failure("fsync: ", error);
  }
  int closed = ::close(fd);
  int closeError = errno;
  fd = -1;
  if (closed != 0) {
    discard();
    throw failure("close: ", closeError);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int error = errno;
    discard();
    throw failure("", error);
  }
  syncDirectoryOf(path);
}

void writeFileAtomically(const std::string& path, std::string_view bytes) {
  writeFileAtomically(path, [bytes](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace cnnc
