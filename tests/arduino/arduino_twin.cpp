/* The Arduino core functions of Arduino.h for tvc's emulator twin (QEMU mps2-an386): Serial
 * output is appended to tvc_serial_out.txt and its input read from tvc_serial_in.bin (when the
 * test wrote one) through semihosting; micros() counts SysTick at 25 MHz; main() runs setup()
 * and one loop(). */
#include <Arduino.h>

extern "C" int tvc_semihost(int op, void *arg);
extern "C" volatile uint32_t tvc_systick_wraps;

TwinSerial Serial;

static int out_handle = -1;
static uint8_t rx[65536];
static size_t rx_len, rx_pos;

static int sh_open(const char *name, uint32_t mode) {
    uint32_t args[3] = {(uint32_t)(uintptr_t)name, mode, (uint32_t)strlen(name)};
    return tvc_semihost(0x01, args);
}

static uint64_t ticks(void) {
    volatile uint32_t *syst = (volatile uint32_t *)0xE000E010u;
    uint32_t w1, v, w2;
    do {
        w1 = tvc_systick_wraps;
        v = syst[2];
        w2 = tvc_systick_wraps;
    } while (w1 != w2);
    return ((uint64_t)w1 << 24) + (0xFFFFFFu - v);
}

unsigned long micros(void) { return (unsigned long)(ticks() / 25u); }
unsigned long millis(void) { return (unsigned long)(ticks() / 25000u); }
void delay(unsigned long ms) { (void)ms; }

void TwinSerial::begin(unsigned long baud) {
    (void)baud;
    out_handle = sh_open("tvc_serial_out.txt", 4u); /* "w" */
    const int in = sh_open("tvc_serial_in.bin", 1u); /* "rb" */
    if (in >= 0) {
        uint32_t len_args[1] = {(uint32_t)in};
        int n = tvc_semihost(0x0C, len_args); /* SYS_FLEN */
        if (n > 0 && (size_t)n <= sizeof rx) {
            uint32_t args[3] = {(uint32_t)in, (uint32_t)(uintptr_t)rx, (uint32_t)n};
            rx_len = (size_t)n - (size_t)tvc_semihost(0x06, args);
        }
    }
}

int TwinSerial::available() { return (int)(rx_len - rx_pos); }

int TwinSerial::read() { return rx_pos < rx_len ? rx[rx_pos++] : -1; }

size_t TwinSerial::readBytes(char *buffer, size_t length) {
    size_t n = 0;
    while (n < length && rx_pos < rx_len) {
        buffer[n++] = (char)rx[rx_pos++];
    }
    return n;
}

size_t TwinSerial::print(const char *s) {
    const size_t n = strlen(s);
    if (out_handle >= 0 && n > 0) {
        uint32_t args[3] = {(uint32_t)out_handle, (uint32_t)(uintptr_t)s, (uint32_t)n};
        (void)tvc_semihost(0x05, args);
    }
    return n;
}

size_t TwinSerial::print(char c) {
    const char s[2] = {c, 0};
    return print(s);
}

size_t TwinSerial::print(unsigned long v, int base) {
    char buf[33];
    char *p = buf + sizeof buf - 1;
    *p = 0;
    do {
        const unsigned long d = v % (unsigned long)base;
        *--p = (char)(d < 10 ? '0' + d : 'A' + d - 10);
        v /= (unsigned long)base;
    } while (v != 0);
    return print(p);
}

size_t TwinSerial::print(long v, int base) {
    if (v < 0 && base == DEC) {
        return print('-') + print((unsigned long)(-(v + 1)) + 1u, base);
    }
    return print((unsigned long)v, base);
}

size_t TwinSerial::print(double v, int digits) { /* as Arduino's Print::printFloat */
    size_t n = 0;
    if (v < 0.0) {
        n += print('-');
        v = -v;
    }
    double rounding = 0.5;
    for (int i = 0; i < digits; ++i) {
        rounding /= 10.0;
    }
    v += rounding;
    unsigned long whole = (unsigned long)v;
    double rest = v - (double)whole;
    n += print(whole);
    if (digits > 0) {
        n += print('.');
    }
    while (digits-- > 0) {
        rest *= 10.0;
        const unsigned int d = (unsigned int)rest;
        n += print((char)('0' + d));
        rest -= d;
    }
    return n;
}

int main(void) {
    volatile uint32_t *syst = (volatile uint32_t *)0xE000E010u;
    syst[1] = 0xFFFFFFu; /* reload */
    syst[2] = 0u;        /* current */
    syst[0] = 7u;        /* enable, interrupt, processor clock */
    setup();
    loop();
    return 0;
}
