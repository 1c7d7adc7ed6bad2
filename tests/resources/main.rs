//! Resource bounds, in a binary of their own because each needs something process-wide: a full
//! disk under the spool (`full_disk`: it counts the spool's warnings in the process-global log
//! of `support::logs`, so no other test that may warn about a spool shares this process), and a
//! verbose tail formatted in bounded memory (`layer_tail_bound`: a global allocator that
//! records the largest allocation on the threads that opt in, and only there).

mod full_disk;
mod layer_tail_bound;
