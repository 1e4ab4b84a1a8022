import { Injectable } from '@nestjs/common';

/** The only source of "now" for the write side, so tests can pin time. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }
}
