package dmsnap.store;

import java.io.IOException;

/** The COW has no free chunk left (the kernel's ENOSPC from prepare_exception). */
public final class StoreFullException extends IOException {
    private static final long serialVersionUID = 1L;

    public StoreFullException(String message) {
        super(message);
    }
}
