/**
 * dmsnap's engine, embeddable without the daemon: tables, targets, mapped devices with
 * suspend/resume, snapshots, exception-store handover and merge. No sockets, CLI, JSON or
 * metrics library here.
 */
module dmsnap.engine {
    requires transitive dmsnap.store;
    requires org.slf4j;

    exports dmsnap.table;
    exports dmsnap.target;
    exports dmsnap.device;
    exports dmsnap.snapshot;
}
