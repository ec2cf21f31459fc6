// BoundedQueue: the hand-over between the MQTT thread and the loop thread
// (DESIGN 6.1). Push blocks while the queue is full, so a slow loop stalls the
// Paho message callback and TCP flow control pushes back to the broker;
// nothing is ever dropped for lack of room.
//
// Wake-ups: a push runs the wake-up hook (the runtime passes one that calls
// uv_async_send, which keeps this header free of libuv) only when it finds
// the consumer idle, and the consumer stays awake from then on until it
// says otherwise with ArmWake(). A consumer that keeps up with a stream
// thus costs the pushing thread (the Paho callback, on the path to the
// PUBACK) no syscall and no hand-off per message: it drains in batches and
// arms the hook only when it runs out of work. A new queue's consumer is
// idle.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>

namespace weir {

template <typename T>
class BoundedQueue {
 public:
  // REQUIRES: capacity > 0. `on_push` may be empty; it runs on the pushing
  // thread, outside the queue's lock, when the push found the consumer idle
  // (see ArmWake), and must be cheap and thread-safe.
  explicit BoundedQueue(size_t capacity, std::function<void()> on_push = {})
      : capacity_(capacity), on_push_(std::move(on_push)) {}

  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Waits while the queue is full. Returns false (and leaves `item` unused)
  // only when the queue was closed.
  bool Push(T item) {
    bool wake = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (items_.size() >= capacity_ && !closed_) {
        ++full_waits_;
        not_full_.wait(lock, [this] { return items_.size() < capacity_ || closed_; });
      }
      if (closed_) return false;
      items_.push_back(std::move(item));
      if (items_.size() > high_water_) high_water_ = items_.size();
      ++pushed_;
      wake = consumer_idle_;
      consumer_idle_ = false;
    }
    if (wake && on_push_) on_push_();
    return true;
  }

  // For the consumer, when it is about to wait for work: returns true and
  // makes the next push run the wake-up hook if the queue is empty; returns
  // false (the consumer stays awake: there is work) otherwise. Checking and
  // arming under one lock means no push can slip in between unnoticed.
  bool ArmWake() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!items_.empty()) return false;
    consumer_idle_ = true;
    return true;
  }

  // Non-blocking, for the loop thread: moves up to `max` items into *out (in
  // push order) and returns how many it moved.
  size_t PopSome(std::deque<T>* out, size_t max) {
    size_t n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (n < max && !items_.empty()) {
        out->push_back(std::move(items_.front()));
        items_.pop_front();
        ++n;
      }
    }
    if (n > 0) not_full_.notify_all();
    return n;
  }

  // Non-blocking: the oldest item, if any.
  bool TryPop(T* out) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (items_.empty()) return false;
      *out = std::move(items_.front());
      items_.pop_front();
    }
    not_full_.notify_all();
    return true;
  }

  // Wakes every waiting Push (they return false) and refuses new items.
  // Items already queued can still be popped.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    not_full_.notify_all();
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }
  // Largest size seen, pushes in total, and how often a push had to wait.
  size_t high_water() const {
    std::lock_guard<std::mutex> lock(mu_);
    return high_water_;
  }
  uint64_t pushed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pushed_;
  }
  uint64_t full_waits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return full_waits_;
  }

 private:
  const size_t capacity_;
  const std::function<void()> on_push_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  bool closed_ = false;
  bool consumer_idle_ = true;  // the next push runs on_push_
  size_t high_water_ = 0;
  uint64_t pushed_ = 0;
  uint64_t full_waits_ = 0;
};

}  // namespace weir
