// Rerun: runs a loop body again rather than nesting it, for a method that a callback it
// triggers may call again before it returns (a store that completes inside the call, an
// operation that finishes inside a drain). Such a call only asks the one on the stack for
// another round, so the stack does not grow with the work, and no list is walked beneath an
// iterator.
// Ownership: a member of the object whose method uses it. Thread-safety: none (one strand).
#pragma once

namespace ringstore::block {

class Rerun {
 public:
  // Runs body() until no call made meanwhile asked for another round. body returns false to
  // stop at once (the owner may have been destroyed inside it, or the work is over for good):
  // Run then returns touching nothing.
  template <class Body>
  void Run(Body&& body) {
    if (active_) {
      again_ = true;
      return;
    }
    active_ = true;
    do {
      again_ = false;
      if (!body()) return;
    } while (again_);
    active_ = false;
  }

 private:
  bool active_ = false;
  bool again_ = false;
};

}  // namespace ringstore::block
