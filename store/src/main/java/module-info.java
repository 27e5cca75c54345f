/**
 * Devices, the kernel's on-disk exception-store formats, the exception table and the chunk
 * copier. No sockets, tables or CLI here.
 */
module dmsnap.store {
    requires transitive dmsnap.ffm;
    requires org.slf4j;

    exports dmsnap.store;
    exports dmsnap.store.device;
    exports dmsnap.store.persistent;
    exports dmsnap.store.copy;
}
