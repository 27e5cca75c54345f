/**
 * The chunk copier, dmsnap's kcopyd ({@code dm-kcopyd.c}): copies a run of chunks from one
 * device to one or more destinations through aligned off-heap buffers on a bounded pool of
 * I/O threads. One read feeds every destination. Failures come back as data in {@link
 * dmsnap.store.copy.CopyResult}, so a failed write invalidates only the snapshot it was for.
 */
package dmsnap.store.copy;
