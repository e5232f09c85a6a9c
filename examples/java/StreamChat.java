import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Streams a chat completion from llmserve with the JDK's HttpClient only (Java 17+, no extra jars).
 *
 * <pre>
 *   make serve                                        # in another terminal
 *   java examples/java/StreamChat.java "Hello!"       # LLMSERVE_URL=http://host:port to point elsewhere
 *                                                     # LLMSERVE_MODEL=name for another model group
 * </pre>
 *
 * It reads the Server-Sent Events line by line as they arrive and prints each delta's content.
 * A real program would use a JSON library; the regex below keeps this example free of dependencies.
 */
public final class StreamChat {
    private static final Pattern CONTENT = Pattern.compile("\"content\":\"((?:[^\"\\\\]|\\\\.)*)\"");

    public static void main(String[] args) throws Exception {
        String base = System.getenv().getOrDefault("LLMSERVE_URL", "http://127.0.0.1:8888");
        String model = System.getenv().getOrDefault("LLMSERVE_MODEL", "tiny-chat");
        String prompt = args.length > 0 ? String.join(" ", args) : "Hello!";
        String body = "{\"model\":\"" + jsonEscape(model) + "\",\"stream\":true,\"temperature\":0,"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"" + jsonEscape(prompt) + "\"}]}";
        // The reply is UTF-8 whatever the terminal's locale says (tiny-chat answers in Chinese too).
        PrintStream out =
                new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                .header("Content-Type", "application/json")
                .header("Accept", "text/event-stream")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
                .build();
        HttpResponse<java.io.InputStream> response =
                client.send(request, HttpResponse.BodyHandlers.ofInputStream());
        try (BufferedReader reader = new BufferedReader(
                new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
            if (response.statusCode() != 200) {
                System.err.println("HTTP " + response.statusCode() + ": " + reader.readLine());
                System.exit(1);
            }
            String line;
            while ((line = reader.readLine()) != null) {
                if (!line.startsWith("data: ")) {
                    continue; // blank separators between events
                }
                String data = line.substring("data: ".length());
                if (data.equals("[DONE]")) {
                    break;
                }
                if (data.contains("\"error\"")) {
                    System.err.println("\nerror event: " + data);
                    System.exit(1);
                }
                Matcher content = CONTENT.matcher(data);
                if (content.find()) {
                    out.print(jsonUnescape(content.group(1)));
                    out.flush();
                }
            }
        }
        out.println();
    }

    private static String jsonEscape(String text) {
        StringBuilder out = new StringBuilder();
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.toString();
    }

    private static String jsonUnescape(String text) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c != '\\' || i + 1 == text.length()) {
                out.append(c);
                continue;
            }
            char next = text.charAt(++i);
            switch (next) {
                case 'n' -> out.append('\n');
                case 't' -> out.append('\t');
                case 'r' -> out.append('\r');
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'u' -> {
                    out.append((char) Integer.parseInt(text.substring(i + 1, i + 5), 16));
                    i += 4;
                }
                default -> out.append(next); // \" \\ \/
            }
        }
        return out.toString();
    }
}
