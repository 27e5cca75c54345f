package dmsnap.store;

/** Told when a committed remap is durable (success) or can never be (failure: the store is invalid). */
@FunctionalInterface
public interface CommitCallback {
    /** Called once, in allocation order, on the committing thread; must not block on the store. */
    void committed(PendingRemap remap, boolean success);
}
