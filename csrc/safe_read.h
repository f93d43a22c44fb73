// Copies of this process's memory that cannot fault.
//
// Safety contract: every read goes through the kernel (process_vm_readv on our own pid, or
// pread on /proc/self/mem, or a write into a pipe), which reports a bad address as an error
// instead of a signal. No signal handler is installed. A reader is used by one thread at a time;
// each thread that reads owns its own SafeReader.
#pragma once

#include <sys/uio.h>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace spprof {

enum class ReadMethod { VmReadv, ProcMem, Pipe };

class SafeReader {
public:
    SafeReader() = default;
    ~SafeReader();
    SafeReader(const SafeReader&) = delete;
    SafeReader& operator=(const SafeReader&) = delete;

    // Picks the first method that works here, or `forced` ("vm_readv", "proc_mem", "pipe").
    // Returns false with a reason in `error` when none does.
    bool open(const std::string& forced, std::string& error);
    void close();
    // Whether the descriptors of /proc/self/mem or the pipe are still the files opened (a program
    // that closes descriptors it does not own may have closed them and reused the numbers).
    // When not, they are forgotten, never closed (the numbers are someone else's now), and the
    // same method is opened afresh; false with a reason when that fails.
    bool revalidate(std::string& error);

    // All-or-nothing: true only when every byte was copied.
    bool read(uint64_t addr, void* dst, size_t len);
    // Many ranges in as few system calls as the method allows; all-or-nothing. Ranges that lie
    // close together are copied as one (see merge()).
    bool readv(const struct iovec* local, const struct iovec* remote, size_t n);
    // The same, in order, stopping at the first range that fails: the bytes copied before it.
    // Only neighbours in the given order are merged.
    size_t readv_prefix(const struct iovec* local, const struct iovec* remote, size_t n);

    ReadMethod method() const { return method_; }
    const char* method_name() const;
    uint64_t syscalls() const { return syscalls_; }

private:
    bool probe(ReadMethod m);
    size_t readv_direct(const struct iovec* local, const struct iovec* remote, size_t n);
    // Groups the ranges into spans_ of the scratch buffer, by address or (`in_order`) as given;
    // false when merging would save nothing or the spans do not fit. In order, a range joins a
    // span only after its end, so each range is still copied after the ones before it (a second
    // read of one address stays a later read).
    bool merge(const struct iovec* local, const struct iovec* remote, size_t n, bool in_order);
    size_t copy_merged(const struct iovec* local, const struct iovec* remote, size_t n);
    bool read_proc_mem(uint64_t addr, void* dst, size_t len);
    // The pipe copies in one writev and one readv per batch that fits it.
    size_t readv_pipe(const struct iovec* local, const struct iovec* remote, size_t n);
    size_t pipe_batch(const struct iovec* local, const struct iovec* remote, size_t n);

    ReadMethod method_ = ReadMethod::VmReadv;
    int pid_ = 0;
    int mem_fd_ = -1;
    int pipe_[2] = {-1, -1};
    struct Identity { uint64_t dev = 0, ino = 0; };
    Identity mem_id_, pipe_id_[2];  // what the descriptors were when opened
    bool ours(int fd, const Identity& id) const;
    Identity identity(int fd) const;
    size_t pipe_batch_ = 4096;
    uint64_t syscalls_ = 0;
    // merging, allocated by open() so that no read allocates; not zeroed, and small enough to
    // come from the heap rather than from fresh mappings faulted in and unmapped at every
    // start() and stop()
    std::unique_ptr<uint32_t[]> order_;
    std::unique_ptr<size_t[]> at_;  // where each range lies in scratch_
    std::unique_ptr<struct iovec[]> span_local_, span_remote_;
    size_t spans_ = 0, span_bytes_ = 0;  // span_bytes_: the part in scratch_
    std::unique_ptr<uint8_t[]> scratch_;
};

}  // namespace spprof
