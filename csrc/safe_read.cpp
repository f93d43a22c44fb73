#include "safe_read.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace spprof {

namespace {
constexpr size_t kMaxIov = 1024;  // IOV_MAX on Linux
constexpr int kPipeWant = 1 << 20;  // the unprivileged maximum by default (fs.pipe-max-size)
constexpr size_t kMergeRanges = 1024;     // more ranges than this (or bytes than the scratch) are read as they are
constexpr size_t kMergeBytes = 64 << 10;   // the scratch buffer
// Two ranges are merged across a gap of at most this: pinning a page costs about as much as
// copying a kilobyte or two. Below a page, a merged range touches no page its parts do not.
constexpr uint64_t kMergeGap = 1024;
constexpr size_t kInPlace = ~size_t{0};
}

SafeReader::~SafeReader() { close(); }

// A number that no longer holds the file opened is someone else's: it is forgotten, not closed.
void SafeReader::close() {
    if (ours(mem_fd_, mem_id_)) ::close(mem_fd_);
    if (ours(pipe_[0], pipe_id_[0])) ::close(pipe_[0]);
    if (ours(pipe_[1], pipe_id_[1])) ::close(pipe_[1]);
    mem_fd_ = pipe_[0] = pipe_[1] = -1;
}

SafeReader::Identity SafeReader::identity(int fd) const {
    struct stat st;
    if (fd < 0 || ::fstat(fd, &st) != 0) return {};
    return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

bool SafeReader::ours(int fd, const Identity& id) const {
    const Identity now = identity(fd);
    return fd >= 0 && now.ino != 0 && now.dev == id.dev && now.ino == id.ino;
}

bool SafeReader::revalidate(std::string& error) {
    if (method_ == ReadMethod::VmReadv) return true;
    const bool intact = method_ == ReadMethod::ProcMem ? ours(mem_fd_, mem_id_)
                                                        : ours(pipe_[0], pipe_id_[0]) && ours(pipe_[1], pipe_id_[1]);
    if (intact) return true;
    mem_fd_ = pipe_[0] = pipe_[1] = -1;
    const char* name = method_ == ReadMethod::ProcMem ? "proc_mem" : "pipe";
    return open(name, error);
}

const char* SafeReader::method_name() const {
    switch (method_) {
        case ReadMethod::VmReadv: return "process_vm_readv";
        case ReadMethod::ProcMem: return "/proc/self/mem";
        case ReadMethod::Pipe: return "pipe";
    }
    return "?";
}

bool SafeReader::probe(ReadMethod m) {
    method_ = m;
    if (m == ReadMethod::ProcMem && mem_fd_ < 0) {
        mem_fd_ = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        if (mem_fd_ < 0) return false;
        mem_id_ = identity(mem_fd_);
    }
    if (m == ReadMethod::Pipe && pipe_[0] < 0) {
        if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) return false;
        pipe_id_[0] = identity(pipe_[0]);
        pipe_id_[1] = identity(pipe_[1]);
        ::fcntl(pipe_[1], F_SETPIPE_SZ, kPipeWant);  // else the default size
        const int size = ::fcntl(pipe_[1], F_GETPIPE_SZ);
        // A page short of the size, so a batch never finds the pipe full: a short write then
        // always means a bad address.
        pipe_batch_ = size > 2 * 4096 ? static_cast<size_t>(size) - 4096 : 4096;
    }
    // A known value must come back, and an unmapped address must fail cleanly.
    volatile uint64_t known = 0x5370707266696c65ull;
    uint64_t got = 0;
    if (!read(reinterpret_cast<uint64_t>(&known), &got, sizeof got) || got != known) return false;
    return !read(8, &got, sizeof got);
}

bool SafeReader::open(const std::string& forced, std::string& error) {
    close();
    pid_ = static_cast<int>(::getpid());
    if (!scratch_) {
        order_.reset(new uint32_t[kMergeRanges]);
        at_.reset(new size_t[kMergeRanges]);
        span_local_.reset(new struct iovec[kMergeRanges]);
        span_remote_.reset(new struct iovec[kMergeRanges]);
        scratch_.reset(new uint8_t[kMergeBytes]);
    }
    struct Candidate { const char* name; ReadMethod m; };
    // process_vm_readv first although a batch through the pipe costs less on a VM: it holds no
    // descriptor, so a program that closes descriptors it does not own (and opens a file that
    // takes the number) can never receive the pipe's writes. The pipe is the last resort.
    const Candidate all[] = {{"vm_readv", ReadMethod::VmReadv},
                             {"proc_mem", ReadMethod::ProcMem},
                             {"pipe", ReadMethod::Pipe}};
    bool known_name = forced.empty();
    for (const auto& c : all) {
        if (!forced.empty() && forced != c.name) continue;
        known_name = true;
        if (probe(c.m)) return true;
    }
    error = known_name ? "no fault-proof memory reader works here (process_vm_readv, /proc/self/mem and a pipe were refused)"
                       : "SPPROF_READER must be vm_readv, proc_mem or pipe, not '" + forced + "'";
    close();
    return false;
}

bool SafeReader::read_proc_mem(uint64_t addr, void* dst, size_t len) {
    auto* out = static_cast<char*>(dst);
    while (len > 0) {
        ++syscalls_;
        ssize_t n = ::pread(mem_fd_, out, len, static_cast<off_t>(addr));
        if (n <= 0) return false;
        out += n; addr += static_cast<uint64_t>(n); len -= static_cast<size_t>(n);
    }
    return true;
}

size_t SafeReader::pipe_batch(const struct iovec* local, const struct iovec* remote, size_t n) {
    ++syscalls_;
    const ssize_t w = ::writev(pipe_[1], remote, static_cast<int>(n));
    if (w <= 0) return 0;  // EFAULT: the first range is not readable
    ++syscalls_;
    const ssize_t r = ::readv(pipe_[0], local, static_cast<int>(n));
    if (r != w) {  // not expected: a pipe gives back what it holds. Empty it, keep what came.
        char sink[4096];
        while (::read(pipe_[0], sink, sizeof sink) > 0) ++syscalls_;
        return r > 0 ? static_cast<size_t>(r) : 0;
    }
    return static_cast<size_t>(w);
}

size_t SafeReader::readv_pipe(const struct iovec* local, const struct iovec* remote, size_t n) {
    size_t copied = 0;
    while (n > 0 && remote[0].iov_base != nullptr) {
        size_t batch = 0, want = 0;
        while (batch < n && batch < kMaxIov && remote[batch].iov_base != nullptr &&
               want + remote[batch].iov_len <= pipe_batch_)
            want += remote[batch++].iov_len;
        if (batch == 0) {  // one range longer than the pipe: in pieces
            struct iovec l = local[0], r = remote[0];
            while (l.iov_len > 0) {
                const size_t part = std::min(l.iov_len, pipe_batch_);
                struct iovec lp{l.iov_base, part}, rp{r.iov_base, part};
                const size_t got = pipe_batch(&lp, &rp, 1);
                copied += got;
                if (got != part) return copied;
                l.iov_base = static_cast<char*>(l.iov_base) + part;
                r.iov_base = static_cast<char*>(r.iov_base) + part;
                l.iov_len -= part;
            }
            ++local; ++remote; --n;
            continue;
        }
        const size_t got = pipe_batch(local, remote, batch);
        copied += got;
        if (got != want) return copied;
        local += batch; remote += batch; n -= batch;
    }
    return copied;
}

bool SafeReader::read(uint64_t addr, void* dst, size_t len) {
    if (len == 0) return true;
    if (addr == 0 || addr + len < addr) return false;
    if (method_ == ReadMethod::VmReadv) {
        struct iovec l{dst, len};
        struct iovec r{reinterpret_cast<void*>(addr), len};
        ++syscalls_;
        return ::syscall(SYS_process_vm_readv, pid_, &l, 1UL, &r, 1UL, 0UL) == static_cast<ssize_t>(len);
    }
    if (method_ == ReadMethod::ProcMem) return read_proc_mem(addr, dst, len);
    struct iovec l{dst, len};
    struct iovec r{reinterpret_cast<void*>(addr), len};
    return readv_pipe(&l, &r, 1) == len;
}

// The kernel pins the pages of every range of a read on its own, and for many small ranges
// (a hundred thread states, a stack's code objects) that, not the copy, is most of the cost.
// A range longer than the gap is read straight into place: copying it twice costs more than its
// pinning.
bool SafeReader::merge(const struct iovec* local, const struct iovec* remote, size_t n, bool in_order) {
    spans_ = span_bytes_ = 0;
    if (n < 2 || n > kMergeRanges || !scratch_) return false;
    uint64_t small = 0;  // more than the scratch holds (a thousand thread states): no sort for nothing
    for (size_t i = 0; i < n; ++i) {
        order_[i] = static_cast<uint32_t>(i);
        if (remote[i].iov_len <= kMergeGap) small += remote[i].iov_len;
    }
    if (small > kMergeBytes) return false;
    if (!in_order)
        std::sort(order_.get(), order_.get() + n, [remote](uint32_t a, uint32_t b) { return remote[a].iov_base < remote[b].iov_base; });
    uint64_t lo = 0, hi = 0;
    bool open_span = false;  // the last span is in scratch_ and may grow
    for (size_t k = 0; k < n; ++k) {
        const uint32_t i = order_[k];
        const uint64_t a = reinterpret_cast<uint64_t>(remote[i].iov_base);
        const uint64_t len = remote[i].iov_len;
        if (a == 0 || a + len < a) return false;
        if (len > kMergeGap) {
            span_local_[spans_] = local[i];
            span_remote_[spans_++] = remote[i];
            at_[i] = kInPlace;
            open_span = false;
            continue;
        }
        if (open_span && a >= (in_order ? hi : lo) && a <= hi + kMergeGap) {
            const uint64_t grown = std::max(hi, a + len);
            if (span_bytes_ + (grown - hi) > kMergeBytes) return false;
            span_bytes_ += grown - hi;
            hi = grown;
            span_local_[spans_ - 1].iov_len = span_remote_[spans_ - 1].iov_len = hi - lo;
        } else {
            if (span_bytes_ + len > kMergeBytes) return false;
            lo = a;
            hi = a + len;
            span_local_[spans_] = {scratch_.get() + span_bytes_, len};
            span_remote_[spans_] = {remote[i].iov_base, len};
            ++spans_;
            span_bytes_ += len;
            open_span = true;
        }
        at_[i] = static_cast<size_t>(static_cast<uint8_t*>(span_local_[spans_ - 1].iov_base) - scratch_.get()) + (a - lo);
    }
    return spans_ < n;
}

// Copies the spans merge() made, then each range out of them. All-or-nothing.
size_t SafeReader::copy_merged(const struct iovec* local, const struct iovec* remote, size_t n) {
    size_t want = 0;
    for (size_t s = 0; s < spans_; ++s) want += span_remote_[s].iov_len;
    if (readv_direct(span_local_.get(), span_remote_.get(), spans_) != want) return 0;
    size_t copied = 0;
    for (size_t i = 0; i < n; ++i) {
        if (at_[i] != kInPlace) std::memcpy(local[i].iov_base, scratch_.get() + at_[i], remote[i].iov_len);
        copied += remote[i].iov_len;
    }
    return copied;
}

bool SafeReader::readv(const struct iovec* local, const struct iovec* remote, size_t n) {
    size_t want = 0;
    for (size_t i = 0; i < n; ++i) {
        if (local[i].iov_len != remote[i].iov_len) return false;
        want += remote[i].iov_len;
    }
    // A merged read fails exactly when a range would have: there is nothing to retry.
    if (merge(local, remote, n, false)) return copy_merged(local, remote, n) == want;
    return readv_direct(local, remote, n) == want;
}

size_t SafeReader::readv_prefix(const struct iovec* local, const struct iovec* remote, size_t n) {
    if (merge(local, remote, n, true)) {
        const size_t got = copy_merged(local, remote, n);
        if (got > 0) return got;
        // Some range failed: read them as they are to learn which, in order.
    }
    return readv_direct(local, remote, n);
}

size_t SafeReader::readv_direct(const struct iovec* local, const struct iovec* remote, size_t n) {
    if (method_ == ReadMethod::Pipe) return readv_pipe(local, remote, n);
    size_t copied = 0;
    if (method_ == ReadMethod::ProcMem) {
        for (size_t i = 0; i < n; ++i) {
            if (!read(reinterpret_cast<uint64_t>(remote[i].iov_base), local[i].iov_base, local[i].iov_len)) break;
            copied += local[i].iov_len;
        }
        return copied;
    }
    while (n > 0) {
        size_t batch = n < kMaxIov ? n : kMaxIov;
        size_t want = 0;
        for (size_t i = 0; i < batch; ++i) {
            if (remote[i].iov_base == nullptr) { batch = i; break; }
            want += remote[i].iov_len;
        }
        if (batch == 0) return copied;
        ++syscalls_;
        ssize_t got = ::syscall(SYS_process_vm_readv, pid_, local, batch, remote, batch, 0UL);
        if (got > 0) copied += static_cast<size_t>(got);
        if (got != static_cast<ssize_t>(want)) return copied;
        local += batch; remote += batch; n -= batch;
    }
    return copied;
}

}  // namespace spprof
