/**
 * The long-running daemon: {@link dmsnap.daemon.Daemon} wires the engine (device manager,
 * snapshot registry, chunk copier) to the control socket, holds the run directory's lock, and
 * stops in order on SIGTERM/SIGINT (suspend with flush, remove every device so that every store
 * is flushed and closed, close the copier). {@link dmsnap.daemon.OwnedDirectory} refuses a run or
 * state directory that is not the daemon's own and locks it, {@link dmsnap.daemon.StateStore}
 * records live tables for restore before they go live, {@link dmsnap.daemon.CowMonitor} watches COW usage, and {@link
 * dmsnap.daemon.MergeFlows} runs and finishes snapshot merges (lvconvert --merge and lvmpolld), with
 * {@link dmsnap.daemon.MergeRecords} keeping each flow's record in the state directory and {@link
 * dmsnap.daemon.MergeReport} saying what {@code snapshot merge --status} shows of each merge.
 */
package dmsnap.daemon;
