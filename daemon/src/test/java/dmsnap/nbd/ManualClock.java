package dmsnap.nbd;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * The NBD server's clock in tests ({@link NbdServer.Settings#nanoClock()}): it moves only when
 * the test moves it, so no message or reply deadline passes because the machine is slow, and one
 * passes exactly when the test says.
 */
final class ManualClock implements LongSupplier {
    private final AtomicLong nanos = new AtomicLong();

    @Override
    public long getAsLong() {
        return nanos.get();
    }

    void advance(Duration by) {
        nanos.addAndGet(by.toNanos());
    }
}
