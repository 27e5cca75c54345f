package dmsnap.control;

import java.io.IOException;

/**
 * The answer to {@code changed} as it is made, in this order: the device compared, then its
 * changed extents in offset order (neighbours merged), then the total. The daemon produces it
 * walking the change map ({@link ControlHandler}), the wire carries it ({@link ChangedStream}),
 * and the CLI prints it as it comes; nothing holds every extent on the way.
 */
public interface ChangedExtents {
    /** First: {@code device}'s changes since snapshot {@code since}; the device is {@code sizeBytes} long. */
    void start(String device, String since, long sizeBytes) throws IOException;

    /** A changed byte range, after the ones before it and not touching the previous one. */
    void extent(long offsetBytes, long lengthBytes) throws IOException;

    /** Last: the extents' lengths added up. */
    void end(long changedBytes) throws IOException;
}
