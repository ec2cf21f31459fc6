// Owners of libuv handles. Each object owns exactly one handle, closes it in
// Close() (or its destructor) and frees it only in the close callback, as
// libuv requires. Only UvAsync::Send may be called from another thread.
#pragma once

#include <uv.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <utility>

namespace weir {

template <typename H>
class UvHandle {
 public:
  UvHandle() : handle_(new H) { handle_->data = this; }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { Close(); }

  // Idempotent. The memory is released in the close callback.
  void Close() {
    if (handle_ == nullptr) return;
    uv_handle_t* h = reinterpret_cast<uv_handle_t*>(handle_);
    h->data = nullptr;
    if (initialized_ && !uv_is_closing(h)) {
      uv_close(h, [](uv_handle_t* closing) { delete reinterpret_cast<H*>(closing); });
    } else if (!initialized_) {
      delete handle_;
    }
    handle_ = nullptr;
  }

 protected:
  H* handle_;
  bool initialized_ = false;
};

// Periodic or one-shot timer on the loop thread.
class UvTimer : public UvHandle<uv_timer_t> {
 public:
  UvTimer(uv_loop_t* loop, std::function<void()> fn) : fn_(std::move(fn)) {
    uv_timer_init(loop, handle_);
    initialized_ = true;
  }
  void Start(uint64_t timeout_ms, uint64_t repeat_ms) {
    uv_timer_start(handle_, &UvTimer::OnTimer, timeout_ms, repeat_ms);
  }
  void Stop() {
    if (handle_) uv_timer_stop(handle_);
  }

 private:
  static void OnTimer(uv_timer_t* t) {
    if (auto* self = static_cast<UvTimer*>(t->data)) self->fn_();
  }
  std::function<void()> fn_;
};

// Cross-thread wake-up: Send() from any thread runs fn on the loop thread
// (several sends may coalesce into one call).
class UvAsync : public UvHandle<uv_async_t> {
 public:
  UvAsync(uv_loop_t* loop, std::function<void()> fn) : fn_(std::move(fn)) {
    uv_async_init(loop, handle_, &UvAsync::OnAsync);
    initialized_ = true;
  }
  void Send() {
    if (handle_) uv_async_send(handle_);
  }

 private:
  static void OnAsync(uv_async_t* a) {
    if (auto* self = static_cast<UvAsync*>(a->data)) self->fn_();
  }
  std::function<void()> fn_;
};

// A POSIX signal delivered on the loop thread.
class UvSignal : public UvHandle<uv_signal_t> {
 public:
  UvSignal(uv_loop_t* loop, int signum, std::function<void()> fn) : fn_(std::move(fn)) {
    uv_signal_init(loop, handle_);
    initialized_ = true;
    uv_signal_start(handle_, &UvSignal::OnSignal, signum);
  }

 private:
  static void OnSignal(uv_signal_t* s, int) {
    if (auto* self = static_cast<UvSignal*>(s->data)) self->fn_();
  }
  std::function<void()> fn_;
};

}  // namespace weir
