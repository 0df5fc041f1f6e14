"""Sequence to sequence with LSTM states, the Keras encoder-decoder recipe, on a task that needs
the states: read a sequence of digits and write it reversed.

Training uses teacher forcing: the encoder's `return_state=True` hands its last `h` and `c` to
the decoder as `initial_state`. Inference then runs as in Keras' seq2seq example, with an
encoder model that returns the states and a decoder model that takes states and returns new
ones, one step at a time, feeding back its own predictions. Both share the trained layers.

Run:
    python examples/seq2seq_reverse.py [--epochs 30] [--length 6]
"""

import argparse

import numpy as np

from rustkeras import Model
from rustkeras.layers import LSTM, Dense, Input
from rustkeras.utils import plot_history, set_random_seed

VOCAB = 11  # the digits 0-9 and a start symbol (10)
START = 10


def make_data(n, length, rng):
    digits = rng.integers(0, 10, size=(n, length))
    onehot = np.eye(VOCAB, dtype=np.float32)
    target = digits[:, ::-1]
    decoder_in = np.concatenate([np.full((n, 1), START), target[:, :-1]], axis=1)
    return onehot[digits], onehot[decoder_in], onehot[target], target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--length", type=int, default=6)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", metavar="FILE",
                        help="write a picture of the training history (loss and metrics per epoch) to FILE, "
                             "e.g. history.png (needs matplotlib)")
    args = parser.parse_args()
    set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    enc_x, dec_x, dec_y, _ = make_data(args.samples, args.length, rng)
    test_enc, _, _, test_target = make_data(1000, args.length, rng)

    # Training model: encoder states start the decoder.
    encoder_inputs = Input(shape=(args.length, VOCAB), name="encoder_inputs")
    _, state_h, state_c = LSTM(args.units, return_state=True, name="encoder")(encoder_inputs)
    decoder_inputs = Input(shape=(args.length, VOCAB), name="decoder_inputs")
    decoder_lstm = LSTM(args.units, return_sequences=True, return_state=True, name="decoder")
    decoder_seq, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    decoder_dense = Dense(VOCAB, activation="softmax", name="next_digit")
    model = Model([encoder_inputs, decoder_inputs], decoder_dense(decoder_seq))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit([enc_x, dec_x], dec_y, batch_size=64, epochs=args.epochs, validation_split=0.1, verbose=2)

    # Inference models sharing the trained layers: one decoder step at a time.
    encoder_model = Model(encoder_inputs, [state_h, state_c])
    step_in = Input(shape=(1, VOCAB))
    h_in, c_in = Input(shape=(args.units,)), Input(shape=(args.units,))
    step_seq, h_out, c_out = decoder_lstm(step_in, initial_state=[h_in, c_in])
    decoder_model = Model([step_in, h_in, c_in], [decoder_dense(step_seq), h_out, c_out])

    h, c = encoder_model.predict(test_enc, batch_size=250, verbose=0)
    token = np.zeros((len(test_enc), 1, VOCAB), np.float32)
    token[:, 0, START] = 1.0
    decoded = []
    for _ in range(args.length):
        probs, h, c = decoder_model.predict([token, h, c], batch_size=250, verbose=0)
        best = probs[:, 0].argmax(-1)
        decoded.append(best)
        token = np.eye(VOCAB, dtype=np.float32)[best][:, None]
    decoded = np.stack(decoded, 1)
    digit_acc = float((decoded == test_target).mean())
    seq_acc = float((decoded == test_target).all(axis=1).mean())
    print(f"greedy decoding on 1000 new sequences: {digit_acc:.4f} of digits, {seq_acc:.4f} of whole sequences right")

    if args.plot:
        plot_history(history, args.plot)
        print("training history written to", args.plot)


if __name__ == "__main__":
    main()
