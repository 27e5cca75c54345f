package dmsnap.store.copy;

import java.util.List;

/**
 * How a copy went: whether the read failed (then nothing was written) and, per destination in
 * the op's order, whether its write failed. Errors are data: each failure concerns only its
 * destination's owner.
 *
 * @param readError  null, or what the read failed with
 * @param writeErrors per destination: null, or what its write failed with
 */
public record CopyResult(Exception readError, List<Exception> writeErrors) {

    /** Whether destination {@code index} received the data. */
    public boolean succeeded(int index) {
        return readError == null && writeErrors.get(index) == null;
    }
}
