package dmsnap.store;

import java.io.IOException;

/**
 * A COW whose metadata cannot be used: bad magic, unknown version, bad chunk size, an exception
 * table the loader cannot trust. The message is the kernel's sentence where it has one.
 */
public final class CorruptStoreException extends IOException {
    private static final long serialVersionUID = 1L;

    public CorruptStoreException(String message) {
        super(message);
    }

    public CorruptStoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
