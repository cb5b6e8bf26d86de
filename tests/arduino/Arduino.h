/* A minimal Arduino.h for tests/test_arduino.py: only what tvc's example sketch uses (Serial,
 * micros, millis, delay), with the overloads of Arduino's Print and Stream classes, so that the
 * sketch compiles here as it does against a real core. The twin's implementation is
 * arduino_twin.cpp: Serial goes through semihosting files, time is the SysTick count. */
#ifndef TVC_TEST_ARDUINO_H
#define TVC_TEST_ARDUINO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define DEC 10
#define HEX 16

unsigned long micros(void);
unsigned long millis(void);
void delay(unsigned long ms);

class TwinSerial {
  public:
    void begin(unsigned long baud);
    operator bool() const { return true; }
    int available();
    int read();
    size_t readBytes(char *buffer, size_t length);
    size_t readBytes(uint8_t *buffer, size_t length) { return readBytes((char *)buffer, length); }

    size_t print(const char *s);
    size_t print(char c);
    size_t print(int v, int base = DEC) { return print((long)v, base); }
    size_t print(unsigned int v, int base = DEC) { return print((unsigned long)v, base); }
    size_t print(long v, int base = DEC);
    size_t print(unsigned long v, int base = DEC);
    size_t print(double v, int digits = 2);

    size_t println() { return print("\r\n"); }
    template <typename T> size_t println(T v) { return print(v) + println(); }
    template <typename T> size_t println(T v, int arg) { return print(v, arg) + println(); }
};

extern TwinSerial Serial;

void setup(void);
void loop(void);

#endif
