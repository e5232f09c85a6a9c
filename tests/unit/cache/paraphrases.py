"""Labelled question pairs for the semantic cache: may the answer to one be replayed for the other?

``paraphrase=True``: the same question asked differently; a cached answer to either serves both.
``paraphrase=False``: a different question, often a hard one for an embedding model (one word, number,
negation or entity changed). Pairs in two languages are labelled False too: the cached answer would be
in the wrong language. This is a cache's notion of "paraphrase", not a linguist's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelledPair:
    first: str
    second: str
    paraphrase: bool
    note: str = ""


def _same(first: str, second: str, note: str = "") -> LabelledPair:
    return LabelledPair(first, second, True, note)


def _different(first: str, second: str, note: str = "") -> LabelledPair:
    return LabelledPair(first, second, False, note)


ENGLISH_PARAPHRASES = (
    _same("What is the capital of France?", "What's the capital city of France?"),
    _same("what is the capital of france", "What is the capital of France?", "case and punctuation"),
    _same("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    _same("What is the boiling point of water?", "At what temperature does water boil?"),
    _same("Who wrote Pride and Prejudice?", "Who is the author of Pride and Prejudice?"),
    _same("How many days are in a leap year?", "How many days does a leap year have?"),
    _same("Explain what a hash table is.", "Can you explain what a hash table is?"),
    _same("What is the speed of light?", "How fast does light travel?"),
    _same("How do I center a div in CSS?", "How can I center a div using CSS?"),
    _same("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    _same("What is the tallest mountain in the world?", "Which mountain is the highest in the world?"),
    _same(
        "How do I convert a string to an integer in JavaScript?",
        "How can I turn a string into an integer in JavaScript?",
    ),
    _same("What does HTTP stand for?", "What is HTTP short for?"),
    _same("Give me a recipe for pancakes.", "Can you give me a pancake recipe?"),
    _same("What causes rain?", "Why does it rain?"),
    _same("How do I install numpy?", "How can I install numpy?"),
    _same("What is the population of Tokyo?", "How many people live in Tokyo?"),
    _same("Summarize the plot of Hamlet.", "Give me a summary of the plot of Hamlet."),
    _same("How do I delete a git branch?", "How can I delete a branch in git?"),
    _same("What is machine learning?", "Can you explain what machine learning is?"),
    _same("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
    _same("How do I make a cup of tea?", "What's the way to make a cup of tea?"),
    _same("What is the difference between TCP and UDP?", "How does TCP differ from UDP?"),
    _same("When did World War II end?", "In what year did the Second World War end?"),
    _same("How do I sort a dictionary by value in Python?", "How can I sort a Python dict by its values?"),
    _same("Is it safe to eat raw eggs?", "Can you safely eat raw eggs?"),
    _same("What time zone is London in?", "Which time zone does London use?"),
    _same("How many legs does a spider have?", "How many legs do spiders have?"),
    _same("Tell me a joke about cats.", "Tell me a cat joke."),
    _same("What is the square root of 144?", "What's the square root of 144?"),
    _same("Set a timer for 5 minutes.", "Please set a 5 minute timer."),
    _same("Why is the sky blue?", "Why does the sky look blue?"),
)

ENGLISH_HARD_NEGATIVES = (
    _different("What is the capital of France?", "What is the capital of Germany?", "entity"),
    _different("What is the capital of Australia?", "What is the largest city in Australia?", "relation"),
    _different("How do I reverse a list in Python?", "How do I sort a list in Python?", "verb"),
    _different("What is 2 + 2?", "What is 2 + 3?", "number"),
    _different("What is the square root of 144?", "What is the square root of 169?", "number"),
    _different("Set a timer for 5 minutes.", "Set a timer for 15 minutes.", "number"),
    _different("List three benefits of exercise.", "List five benefits of exercise.", "number word"),
    _different("Is 17 a prime number?", "Is 21 a prime number?", "number"),
    _different("How many days are in a leap year?", "How many days are in a non-leap year?", "negation"),
    _different("Which foods contain gluten?", "Which foods do not contain gluten?", "negation"),
    _different("Is it safe to eat raw eggs?", "Is it unsafe to eat raw eggs?", "negation"),
    _different("I love this product, it works great.", "I hate this product, it never works.", "sentiment"),
    _different("Who wrote Pride and Prejudice?", "Who wrote Sense and Sensibility?", "entity"),
    _different(
        "Convert 100 degrees Fahrenheit to Celsius.", "Convert 100 degrees Celsius to Fahrenheit.", "order"
    ),
    _different("Translate 'good morning' into Spanish.", "Translate 'good morning' into French.", "entity"),
    _different("What is the population of Tokyo?", "What is the population of Osaka?", "entity"),
    _different("Write a poem about the sea.", "Write a poem about the mountains.", "topic"),
    _different(
        "How do I convert a string to an integer in JavaScript?",
        "How do I convert an integer to a string in JavaScript?",
        "order",
    ),
    _different(
        "Does Python support multiple inheritance?", "Does Java support multiple inheritance?", "entity"
    ),
    _different(
        "Explain how to install Python on Windows.", "Explain how to install Python on macOS.", "entity"
    ),
    _different("What year did the Berlin Wall fall?", "What year was the Berlin Wall built?", "verb"),
    _different(
        "Who is the president of the United States?",
        "Who is the vice president of the United States?",
        "role",
    ),
    _different("How do I add a column in pandas?", "How do I drop a column in pandas?", "verb"),
    _different(
        "What is the time complexity of quicksort in the best case?",
        "What is the time complexity of quicksort in the worst case?",
        "antonym",
    ),
    _different("Give me a recipe for pancakes.", "Give me a recipe for waffles.", "entity"),
    _different("How do I delete a git branch?", "How do I create a git branch?", "verb"),
    _different("What is the boiling point of water?", "What is the freezing point of water?", "antonym"),
    _different("Summarize the plot of Hamlet.", "Summarize the plot of Macbeth.", "entity"),
    _different("Things to do in Paris in summer.", "Things to do in Paris in winter.", "antonym"),
    _different("How do I bake bread?", "What is quantum computing?", "unrelated"),
    _different("Tell me a joke about cats.", "Tell me a joke about dogs.", "entity"),
)

# Same topic, two or more words changed: what the lexical guard cannot veto, so the threshold must.
MULTI_WORD_NEGATIVES = (
    _different("How do I read a CSV file in pandas?", "How do I write a JSON file in pandas?"),
    _different("What is the capital of France?", "What is the population of Paris?"),
    _different("How do I install Python on Windows?", "How do I update Node on Linux?"),
    _different("What are the side effects of ibuprofen?", "What is the recommended dose of ibuprofen?"),
    _different("How do I make a cup of tea?", "How do I make iced coffee at home?"),
    _different("Who won the last World Cup?", "Who scored the most goals at the last World Cup?"),
    _different(
        "What is the difference between a list and a tuple in Python?",
        "What is the difference between a set and a dictionary in Python?",
    ),
    _different("How do I reset my password?", "How do I change my email address?"),
    _different("What are the symptoms of the flu?", "How is the flu treated?"),
    _different("How do I center a div in CSS?", "How do I center text vertically in CSS?"),
    _different("Best restaurants in Rome.", "Cheap hotels in Rome."),
    _different("How do I cancel my subscription?", "How do I upgrade my subscription plan?"),
    _different(
        "What is the weather like in London today?", "What is the weather forecast for Paris tomorrow?"
    ),
    _different("Explain the causes of World War I.", "Explain the consequences of World War II."),
    _different("How do I sort a list in Python?", "How do I sort an array in JavaScript?"),
    _different(
        "What is the time complexity of binary search?", "What is the space complexity of merge sort?"
    ),
)

CHINESE_PARAPHRASES = (
    _same("法国的首都是哪里？", "法国首都是什么城市？"),
    _same("如何在Python中反转列表？", "Python里怎么把列表反转？"),
    _same("水的沸点是多少？", "水在多少度会沸腾？"),
    _same("今天天气怎么样？", "今天的天气如何？"),
    _same("《红楼梦》的作者是谁？", "谁写了《红楼梦》？"),
    _same("如何学习英语？", "怎样才能学好英语？"),
    _same("一年有多少天？", "一年共有几天？"),
    _same("什么是机器学习？", "请解释一下什么是机器学习。"),
    _same("北京有多少人口？", "北京的人口是多少？"),
    _same("怎么煮米饭？", "米饭应该怎么煮？"),
    _same("世界上最高的山是哪座？", "哪座山是世界最高峰？"),
    _same("如何删除git分支？", "git分支怎么删除？"),
    _same("请给我讲个笑话。", "讲一个笑话给我听。"),
    _same("长城有多长？", "长城的长度是多少？"),
    _same("我该怎么重置密码？", "密码怎么重置？"),
)

CHINESE_HARD_NEGATIVES = (
    _different("法国的首都是哪里？", "德国的首都是哪里？", "entity"),
    _different("如何在Python中反转列表？", "如何在Python中排序列表？", "verb"),
    _different("水的沸点是多少？", "水的冰点是多少？", "antonym"),
    _different("北京有多少人口？", "上海有多少人口？", "entity"),
    _different("今天天气怎么样？", "明天天气怎么样？", "date"),
    _different("这个产品很好用。", "这个产品不好用。", "negation"),
    _different("2加2等于几？", "2加3等于几？", "number"),
    _different("如何删除git分支？", "如何创建git分支？", "verb"),
    _different("《红楼梦》的作者是谁？", "《西游记》的作者是谁？", "entity"),
    _different("把这句话翻译成英文。", "把这句话翻译成日文。", "entity"),
    _different("推荐几本科幻小说。", "推荐几部科幻电影。", "entity"),
    _different("怎么煮米饭？", "怎么煮面条？", "entity"),
    _different("猫可以吃巧克力吗？", "狗可以吃巧克力吗？", "entity"),
    _different("如何学习英语？", "量子计算是什么？", "unrelated"),
)

CROSS_LANGUAGE = (
    _different("What is the capital of France?", "法国的首都是哪里？", "answer language"),
    _different("How do I reverse a list in Python?", "如何在Python中反转列表？", "answer language"),
)

# Written before the lexical guard was designed, and not tuned against since: a check on overfitting.
HELD_OUT = (
    _same("How do I undo the last git commit?", "How can I revert my most recent git commit?"),
    _same("What's the best way to learn guitar?", "How should I go about learning guitar?"),
    _same("How do I read a CSV file in pandas?", "How can I load a CSV file with pandas?"),
    _same("What is the meaning of life?", "What's the meaning of life?"),
    _same("Recommend a good science fiction book.", "Can you recommend a good sci-fi book?"),
    _same("How long should I boil an egg?", "How many minutes should I boil an egg for?"),
    _same("What is the largest ocean on Earth?", "Which ocean is the largest on Earth?"),
    _same("How do I check my Python version?", "How can I find out which version of Python I have?"),
    _same("Who discovered penicillin?", "Who was the discoverer of penicillin?"),
    _same("Write a haiku about autumn.", "Compose a haiku about autumn."),
    _same("Should I learn Rust or Go first?", "Should I learn Go or Rust first?", "order, same meaning"),
    _same("怎么做红烧肉？", "红烧肉怎么做？"),
    _different("How do I undo the last git commit?", "How do I undo the last git push?", "entity"),
    _different("What is the largest ocean on Earth?", "What is the smallest ocean on Earth?", "antonym"),
    _different("How do I read a CSV file in pandas?", "How do I write a CSV file in pandas?", "verb"),
    _different("Who discovered penicillin?", "Who discovered insulin?", "entity"),
    _different("Write a haiku about autumn.", "Write a haiku about spring.", "entity"),
    _different("How long should I boil an egg?", "How long should I fry an egg?", "verb"),
    _different("Is coffee bad for your health?", "Is coffee good for your health?", "antonym"),
    _different("Flights from London to New York.", "Flights from New York to London.", "order"),
    _different("What is 15% of 80?", "What is 20% of 80?", "number"),
    _different("Recommend a good science fiction book.", "Recommend a good science fiction movie.", "entity"),
    _different(
        "Explain recursion to a five year old.",
        "Explain recursion to a computer science student.",
        "audience",
    ),
    _different("What does a red traffic light mean?", "What does a green traffic light mean?", "entity"),
    _different("怎么做红烧肉？", "怎么做糖醋排骨？", "entity"),
)

PAIRS: tuple[LabelledPair, ...] = (
    ENGLISH_PARAPHRASES
    + ENGLISH_HARD_NEGATIVES
    + MULTI_WORD_NEGATIVES
    + CHINESE_PARAPHRASES
    + CHINESE_HARD_NEGATIVES
    + CROSS_LANGUAGE
    + HELD_OUT
)
