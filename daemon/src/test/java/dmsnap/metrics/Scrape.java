package dmsnap.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.LinkedHashMap;
import java.util.Map;

/** One GET of /metrics over HTTP, as Prometheus does it, parsed into series → value. */
record Scrape(String text, Map<String, Double> series) {

    static Scrape of(int port) throws IOException, InterruptedException {
        try (HttpClient client = HttpClient.newHttpClient()) {
            HttpResponse<String> response = client.send(
                    HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                            .build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, response.statusCode(), response.body());
            String type = response.headers().firstValue("Content-Type").orElse("");
            assertTrue(type.startsWith("text/plain; version=0.0.4"), type);
            Map<String, Double> series = new LinkedHashMap<>();
            for (String line : response.body().split("\n")) {
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                int space = line.lastIndexOf(' ');
                series.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
            }
            return new Scrape(response.body(), series);
        }
    }

    /** The value of one series, e.g. {@code dmsnap_device_reads_total{device="snap"}}; fails when absent. */
    double value(String name) {
        Double v = series.get(name);
        assertTrue(v != null, () -> name + " is not in the scrape:\n" + text);
        return v;
    }

    /** Asserts that {@code name} has value {@code expected}. */
    void expect(String name, double expected) {
        assertEquals(expected, value(name), name);
    }

    /** Whether any series has a label {@code device="NAME"}. */
    boolean mentionsDevice(String device) {
        return text.contains("device=\"" + device + "\"");
    }
}
