//! The embedded backend: queues, topics, streams, buckets and tables in process memory.
//! (in progress)
